"""BlobStore: content stored once by digest, visible to a repository only through its link."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.errors import ErrorCode
from registry.lifecycle.guard import PushGuard
from registry.references import Digest, RepositoryName
from registry.storage import Storage, paths
from storage_drivers import InvalidOffset, PathNotFound, StorageUnavailable
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
    """Records when each read of a blob's link, of a content's size and each opening of its
    content starts and ends, and whether each opened stream was closed; a link read lets other
    tasks run in between, as a storage round trip does. ``reads_are_round_trips`` as asked."""

    def __init__(self, round_trips: bool = True) -> None:
        super().__init__()
        self.reads_are_round_trips = round_trips
        self.events: list[str] = []
        self.streams: list[_Tracked] = []
        self.link_failure: Exception | None = None
        self.link_answers = asyncio.Event()
        """Cleared: link reads wait until it is set."""
        self.link_answers.set()
        self.content_opened = asyncio.Event()

    async def _get_content(self, path: str) -> bytes:
        if "/_layers/" not in path:
            return await super()._get_content(path)
        self.events.append("link read")
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            await self.link_answers.wait()
            if self.link_failure is not None:
                raise self.link_failure
            return await super()._get_content(path)
        finally:
            self.events.append("link answered")

    async def _file_size(self, path: str) -> int | None:
        self.events.append("size read")
        return await super()._file_size(path)

    async def _sized_reader(
        self, path: str, offset: int, length: int | None
    ) -> tuple[int, AsyncIterator[bytes]]:
        # As a GET answers: the size comes with the content, no size read apart.
        self.events.append("content opened")
        size = len(await super()._get_content(path))
        if offset > size:
            raise InvalidOffset(path, "beyond the end")
        stream = _Tracked(self._reader(path, offset, length))
        self.streams.append(stream)
        self.content_opened.set()
        return size, stream


class _Tracked:
    """An opened stream that says whether it was closed."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.closed = False

    def __aiter__(self) -> _Tracked:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("round_trips", [True, False], ids=["remote", "local"])
@pytest.mark.parametrize("fetching", [True, False], ids=["fetching", "probing"])
async def test_a_fetching_stat_reads_the_link_and_the_size_at_once(fetching: bool, round_trips: bool) -> None:
    """At once only where a read is a round trip: on a filesystem, in sequence costs less."""
    driver = _OrderRecordingDriver(round_trips)
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, b"layer")
    driver.events.clear()
    at_once = fetching and round_trips
    assert await storage.blobs.stat(APP, digest, fetching=fetching) == len(b"layer")
    if at_once:  # one round trip: the size is asked for before the link's answer is in
        assert driver.events == ["link read", "size read", "link answered"]
    else:
        assert driver.events == ["link read", "link answered", "size read"]
    # Without the link the blob is unknown either way; a probe then reads nothing more.
    driver.events.clear()
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest, fetching=fetching)
    assert ("size read" in driver.events) is at_once
    # With the link but without the content (collected meanwhile), too.
    await driver.delete(paths.blob_data(digest).rsplit("/", 1)[0])
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest, fetching=fetching)


async def _fetched(
    storage: Storage, digest: Digest, offset: int = 0, length: int | None = None
) -> tuple[int, bytes]:
    fetched = await storage.blobs.fetch(APP, digest, offset, length)
    assert fetched is not None
    size, chunks = fetched
    return size, b"".join([chunk async for chunk in chunks])


async def test_a_fetch_opens_the_content_while_the_link_is_read() -> None:
    driver = _OrderRecordingDriver()
    storage = Storage(driver, PushGuard(driver))
    data = os.urandom(100_000)
    digest = await put_blob(storage, APP, data)
    driver.events.clear()
    assert await _fetched(storage, digest) == (len(data), data)
    # One round trip: the content is opened before the link's answer is in, no size read apart.
    assert driver.events == ["link read", "content opened", "link answered"]
    assert await _fetched(storage, digest, 99_990) == (len(data), data[99_990:])
    assert await _fetched(storage, digest, 10, 5) == (len(data), data[10:15])
    assert await _fetched(storage, digest, 99_990, 500) == (len(data), data[99_990:]), "clipped at the end"
    assert await _fetched(storage, digest, len(data)) == (len(data), b"")
    assert await storage.blobs.fetch(APP, digest, len(data) + 1) is None, "beyond the end: stat tells"


async def test_a_fetch_of_a_blob_the_repository_does_not_hold_closes_what_it_opened() -> None:
    driver = _OrderRecordingDriver()
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, os.urandom(1000))
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.fetch(OTHER, digest)
    assert [stream.closed for stream in driver.streams] == [True]
    # A link that cannot be read: its error, and the content closed all the same.
    driver.link_failure = StorageUnavailable("link", "the store is down")
    with pytest.raises(StorageUnavailable):
        await storage.blobs.fetch(APP, digest)
    assert [stream.closed for stream in driver.streams] == [True, True]
    # The link without the content (collected meanwhile): unknown, nothing opened.
    driver.link_failure = None
    await driver.delete(paths.blob_data(digest).rsplit("/", 1)[0])
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.fetch(APP, digest)
    assert len(driver.streams) == 2
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.fetch(OTHER, Digest.of(b"never pushed"))


async def test_a_fetch_cancelled_while_the_link_is_read_closes_what_it_opened() -> None:
    """A request cancelled (its client gone) after the content opened, before the link's answer:
    the opened stream is closed, not dropped."""
    driver = _OrderRecordingDriver()
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, os.urandom(1000))
    driver.link_answers.clear()
    fetching = asyncio.ensure_future(storage.blobs.fetch(APP, digest))
    await asyncio.wait_for(driver.content_opened.wait(), 10)
    fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetching
    assert [stream.closed for stream in driver.streams] == [True]


async def test_a_fetch_where_reads_are_local_leaves_it_to_stat_and_open() -> None:
    driver = _OrderRecordingDriver(round_trips=False)
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, b"layer")
    driver.events.clear()
    assert await storage.blobs.fetch(APP, digest) is None
    assert driver.events == []
