"""Uploads: sessions that grow by appends, are verified on completion and can be purged."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from registry.errors import ErrorCode
from registry.lifecycle.guard import PushGuard
from registry.references import Digest, UploadId
from registry.storage import Storage, paths
from storage_drivers import PathNotFound

from .recording import RecordingDriver, body, raises, repository

APP = repository("team/app")
OTHER = repository("team/other")
UNKNOWN = UploadId("00000000-0000-0000-0000-000000000000")


async def test_a_new_upload_is_empty_and_grows_with_each_append(storage: Storage) -> None:
    upload = await storage.uploads.start(APP)
    assert await storage.uploads.size(APP, upload) == 0
    assert await storage.uploads.append(APP, upload, body(b"abc", b"de")) == 5
    assert await storage.uploads.append(APP, upload, body(b"fgh"), start=5) == 8
    assert await storage.uploads.size(APP, upload) == 8


async def test_an_append_that_does_not_continue_the_upload_changes_nothing(storage: Storage) -> None:
    upload = await storage.uploads.start(APP)
    await storage.uploads.append(APP, upload, body(b"12345"))
    for start in (0, 4, 6):
        with raises(ErrorCode.UPLOAD_RANGE_INVALID):
            await storage.uploads.append(APP, upload, body(b"xx"), start=start)
    assert await storage.uploads.size(APP, upload) == 5
    digest = Digest.of(b"1234567")
    assert await storage.uploads.complete(APP, upload, digest, body(b"67"), start=5) == 7
    assert await storage.blobs.stat(APP, digest) == 7


async def test_complete_makes_the_upload_a_blob_of_its_repository_and_ends_it(
    storage: Storage, driver: RecordingDriver
) -> None:
    data = os.urandom(5000)
    digest = Digest.of(data)
    upload = await storage.uploads.start(APP)
    await storage.uploads.append(APP, upload, body(data[:2000]))
    assert await storage.uploads.complete(APP, upload, digest, body(data[2000:])) == 5000
    assert driver.written[-2:] == [paths.blob_data(digest), paths.layer_link(APP, digest)]
    assert b"".join([chunk async for chunk in await storage.blobs.open(digest)]) == data
    with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        await storage.uploads.size(APP, upload)
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest)


async def test_complete_closes_the_session_with_one_delete(storage: Storage, driver: RecordingDriver) -> None:
    """Its start record's delete is all that is left of the upload once its data is the blob's, and
    takes the emptied directory with it: one call to the driver (one thread hop on a filesystem)."""
    data = os.urandom(3000)
    upload = await storage.uploads.start(APP)
    await storage.uploads.append(APP, upload, body(data))
    driver.deletes.clear()
    await storage.uploads.complete(APP, upload, Digest.of(data))
    assert driver.deletes == [(paths.upload_started_at(APP, upload),)]
    with pytest.raises(PathNotFound):
        await driver.list(paths.upload(APP, upload))


async def test_complete_without_a_body_and_an_empty_blob(storage: Storage) -> None:
    upload = await storage.uploads.start(APP)
    assert await storage.uploads.complete(APP, upload, Digest.of(b"")) == 0
    assert await storage.blobs.stat(APP, Digest.of(b"")) == 0


async def test_a_digest_mismatch_discards_the_upload_and_stores_nothing(storage: Storage) -> None:
    upload = await storage.uploads.start(APP)
    claimed = Digest.of(b"something else")
    with raises(ErrorCode.DIGEST_INVALID):
        await storage.uploads.complete(APP, upload, claimed, body(b"the bytes sent"))
    assert await storage.blobs.size(claimed) is None
    assert await storage.blobs.size(Digest.of(b"the bytes sent")) is None
    with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        await storage.uploads.size(APP, upload)


async def test_sha512_uploads_are_verified_with_sha512(storage: Storage) -> None:
    data = b"sha512 content"
    digest = Digest("sha512", hashlib.sha512(data).hexdigest())
    upload = await storage.uploads.start(APP, "sha512")
    await storage.uploads.append(APP, upload, body(data))
    assert await storage.uploads.complete(APP, upload, digest) == len(data)
    assert await storage.blobs.stat(APP, digest) == len(data)


async def test_content_already_stored_is_linked_again_without_a_second_copy(
    storage: Storage, driver: RecordingDriver
) -> None:
    data = b"pushed twice"
    digest = Digest.of(data)
    for name in (APP, OTHER):
        upload = await storage.uploads.start(name)
        await storage.uploads.complete(name, upload, digest, body(data))
    assert driver.written.count(paths.blob_data(digest)) == 1
    assert await storage.blobs.stat(OTHER, digest) == len(data)


async def test_another_worker_continues_and_completes_an_upload(
    storage: Storage, driver: RecordingDriver
) -> None:
    """Nothing an upload needs lives only in one worker's memory: a second ``Storage`` on the same
    driver (another worker) continues it, and hashes what it did not see arrive."""
    upload = await storage.uploads.start(APP)
    await storage.uploads.append(APP, upload, body(b"first half, "))
    other_worker = Storage(driver, PushGuard(driver))
    assert await other_worker.uploads.size(APP, upload) == 12
    await other_worker.uploads.append(APP, upload, body(b"second half"), start=12)
    digest = Digest.of(b"first half, second half")
    assert await storage.uploads.complete(APP, upload, digest) == 23


async def test_unknown_uploads_and_uploads_of_other_repositories_are_refused(storage: Storage) -> None:
    upload = await storage.uploads.start(APP)
    digest = Digest.of(b"")
    for name, upload_id in ((APP, UNKNOWN), (OTHER, upload)):
        with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
            await storage.uploads.size(name, upload_id)
        with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
            await storage.uploads.append(name, upload_id, body(b"x"))
        with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
            await storage.uploads.complete(name, upload_id, digest)
        with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
            await storage.uploads.cancel(name, upload_id)
    assert await storage.uploads.size(APP, upload) == 0


async def test_cancel_ends_the_upload(storage: Storage) -> None:
    upload = await storage.uploads.start(APP)
    await storage.uploads.append(APP, upload, body(b"abandoned"))
    await storage.uploads.cancel(APP, upload)
    with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        await storage.uploads.size(APP, upload)
    with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        await storage.uploads.cancel(APP, upload)


async def test_purge_removes_uploads_started_before_the_cutoff(storage: Storage) -> None:
    first = await storage.uploads.start(APP)
    second = await storage.uploads.start(APP)
    await storage.uploads.append(APP, second, body(b"data"))
    assert await storage.uploads.purge(APP, time.time() - 3600, dry_run=False) == []
    expected = sorted(paths.upload(APP, upload) for upload in (first, second))

    assert sorted(await storage.uploads.purge(APP, time.time() + 3600, dry_run=True)) == expected
    assert await storage.uploads.size(APP, second) == 4  # a dry run only lists
    assert sorted(await storage.uploads.purge(APP, time.time() + 3600, dry_run=False)) == expected
    with raises(ErrorCode.BLOB_UPLOAD_UNKNOWN):
        await storage.uploads.size(APP, first)
    assert await storage.uploads.purge(OTHER, time.time() + 3600, dry_run=False) == []


async def test_purge_dates_an_upload_without_a_start_time_by_its_last_write(
    storage: Storage, driver: RecordingDriver
) -> None:
    upload = await storage.uploads.start(APP)
    await driver.put_content(paths.upload_started_at(APP, upload), b"not a time")
    assert await storage.uploads.purge(APP, time.time() - 3600, dry_run=False) == []
    assert await storage.uploads.purge(APP, time.time() + 3600, dry_run=False) == [paths.upload(APP, upload)]


async def test_storage_purges_old_uploads_of_every_repository(storage: Storage) -> None:
    uploads = {name: await storage.uploads.start(name) for name in (APP, OTHER, repository("a/b/c"))}
    assert await storage.purge_uploads(age=3600) == []
    purged = await storage.purge_uploads(age=-3600, dry_run=True)
    assert purged == [paths.upload(name, uploads[name]) for name in sorted(uploads)]
    assert await storage.purge_uploads(age=-3600) == purged
    assert await storage.purge_uploads(age=-3600) == []
