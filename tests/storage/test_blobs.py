"""BlobStore: content stored once by digest, visible to a repository only through its link."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from registry.errors import ErrorCode
from registry.lifecycle.guard import PushGuard
from registry.references import Digest, RepositoryName
from registry.storage import Storage, paths
from storage_drivers import PathNotFound
from storage_drivers.filesystem import FilesystemDriver

from .recording import RecordingDriver, put_blob, raises, repository

APP = repository("team/app")
OTHER = repository("team/other")
THIRD = repository("team/third")


async def read_all(storage: Storage, digest: Digest, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in await storage.blobs.open(digest, offset, length)])


async def test_unknown_digest_has_no_size_and_is_unknown_to_every_repository(storage: Storage) -> None:
    digest = Digest.of(b"never pushed")
    assert await storage.blobs.size(digest) is None
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest)


async def test_content_is_readable_whole_and_by_range(storage: Storage) -> None:
    data = os.urandom(3000)
    digest = await put_blob(storage, APP, data)
    assert await storage.blobs.stat(APP, digest) == 3000
    assert await read_all(storage, digest) == data
    assert await read_all(storage, digest, 1000, 500) == data[1000:1500]
    assert await read_all(storage, digest, 2500) == data[2500:]
    assert await storage.blobs.redirect_url(digest) is None  # the in-memory driver never redirects


async def test_stored_content_stays_unknown_to_a_repository_without_its_link(storage: Storage) -> None:
    digest = await put_blob(storage, APP, b"only in app")
    assert await storage.blobs.size(digest) == len(b"only in app")
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest)


async def test_mount_from_a_source_repository_links_only_what_the_source_holds(storage: Storage) -> None:
    digest = await put_blob(storage, APP, b"mountable")
    missing = Digest.of(b"nowhere")
    assert await storage.blobs.mount(OTHER, APP, missing) is None
    assert await storage.blobs.mount(OTHER, repository("team/empty"), digest) is None
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest)
    assert await storage.blobs.mount(OTHER, APP, digest) == len(b"mountable")
    assert await storage.blobs.stat(OTHER, digest) == len(b"mountable")


async def test_a_source_link_counts_only_when_it_holds_the_digest(
    storage: Storage, driver: RecordingDriver
) -> None:
    digest = await put_blob(storage, APP, b"mountable")
    other = Digest.of(b"another")
    link = paths.layer_link(APP, digest)
    for content in (str(other).encode(), b"", str(digest).encode()[:-1], str(digest).upper().encode()):
        await driver.put_content(link, content)
        with raises(ErrorCode.BLOB_UNKNOWN):
            await storage.blobs.stat(APP, digest)
        assert await storage.blobs.mount(OTHER, APP, digest) is None
    await driver.put_content(link, str(digest).encode() + b"\n")  # a newline, as some tools write
    assert await storage.blobs.mount(OTHER, APP, digest) == len(b"mountable")


async def test_mount_without_a_source_links_any_stored_content(storage: Storage) -> None:
    digest = await put_blob(storage, APP, b"anywhere")
    assert await storage.blobs.mount(OTHER, None, Digest.of(b"nowhere")) is None
    assert await storage.blobs.mount(OTHER, None, digest) == len(b"anywhere")
    assert await storage.blobs.stat(OTHER, digest) == len(b"anywhere")


async def test_a_mount_on_the_filesystem_shares_the_source_link_and_unlinks_apart(tmp_path: Path) -> None:
    """On the filesystem a mount's link is the source's link file (a hard link): its content is
    on disk already. Removing either repository's blob leaves the other's link as it was; a
    source link written with a newline, as some tools write, is not shared but written anew."""
    driver = FilesystemDriver(str(tmp_path))
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, b"shared on disk")

    def file(name: RepositoryName) -> Path:
        return tmp_path / paths.layer_link(name, digest).lstrip("/")

    assert await storage.blobs.mount(OTHER, APP, digest) == len(b"shared on disk")
    assert file(OTHER).stat().st_ino == file(APP).stat().st_ino
    assert await storage.blobs.mount(THIRD, None, digest) == len(b"shared on disk")
    assert file(THIRD).stat().st_ino != file(APP).stat().st_ino  # no source named: written
    await storage.blobs.unlink(APP, digest)
    assert file(OTHER).read_bytes() == paths.link_content(digest)
    await driver.put_content(paths.layer_link(OTHER, digest), str(digest).encode() + b"\n")
    assert await storage.blobs.mount(APP, OTHER, digest) == len(b"shared on disk")
    assert file(APP).read_bytes() == paths.link_content(digest)
    assert file(APP).stat().st_ino != file(OTHER).stat().st_ino


async def test_unlink_removes_the_blob_from_one_repository_and_keeps_the_content(storage: Storage) -> None:
    digest = await put_blob(storage, APP, b"shared")
    await storage.blobs.mount(OTHER, APP, digest)
    await storage.blobs.unlink(APP, digest)
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest)
    assert await storage.blobs.stat(OTHER, digest) == len(b"shared")
    assert await storage.blobs.size(digest) == len(b"shared")  # left for garbage collection
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.unlink(APP, digest)


async def test_ingest_moves_new_content_in_and_drops_a_second_copy(
    storage: Storage, driver: RecordingDriver
) -> None:
    data = b"ingested"
    digest = Digest.of(data)
    await driver.put_content("/staging/first", data)
    await storage.blobs.ingest(APP, "/staging/first", digest, len(data))
    assert driver.written[-2:] == [paths.blob_data(digest), paths.layer_link(APP, digest)]

    await driver.put_content("/staging/second", data)
    del driver.written[:]
    await storage.blobs.ingest(OTHER, "/staging/second", digest, len(data))
    assert driver.written == [paths.layer_link(OTHER, digest)]  # content addressing: nothing moved
    with pytest.raises(PathNotFound):
        await driver.stat("/staging")  # both uploads' data gone: one moved, one dropped
    assert await storage.blobs.stat(OTHER, digest) == len(data)
    assert await read_all(storage, digest) == data


class _OrderRecordingDriver(RecordingDriver):
    """Records when each read of a blob's link and of a content's size starts and ends; a link
    read lets other tasks run in between, as a storage round trip does."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def _get_content(self, path: str) -> bytes:
        if "/_layers/" not in path:
            return await super()._get_content(path)
        self.events.append("link read")
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            return await super()._get_content(path)
        finally:
            self.events.append("link answered")

    async def _file_size(self, path: str) -> int | None:
        self.events.append("size read")
        return await super()._file_size(path)


@pytest.mark.parametrize("fetching", [True, False], ids=["fetching", "probing"])
async def test_a_fetching_stat_reads_the_link_and_the_size_at_once(fetching: bool) -> None:
    driver = _OrderRecordingDriver()
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, b"layer")
    driver.events.clear()
    assert await storage.blobs.stat(APP, digest, fetching=fetching) == len(b"layer")
    if fetching:  # one round trip: the size is asked for before the link's answer is in
        assert driver.events == ["link read", "size read", "link answered"]
    else:
        assert driver.events == ["link read", "link answered", "size read"]
    # Without the link the blob is unknown either way; a probe then reads nothing more.
    driver.events.clear()
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest, fetching=fetching)
    assert ("size read" in driver.events) is fetching
    # With the link but without the content (collected meanwhile), too.
    await driver.delete(paths.blob_data(digest).rsplit("/", 1)[0])
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest, fetching=fetching)
