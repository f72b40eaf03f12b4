"""The blob descriptor cache (``storage.cache.blobdescriptor: inmemory``) in the storage services:
clients' reads skip the link reads it remembers, entries expire, deletes through this worker are
seen at once, and every check a push decides on still reads storage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from registry.errors import ErrorCode
from registry.lifecycle.guard import PushGuard
from registry.references import Digest, RepositoryName
from registry.storage import DescriptorCache, Storage, paths
from storage_drivers import FileInfo
from tests.support.images import random_image

from .recording import RecordingDriver, put_blob, put_image, raises, repository

APP = repository("team/app")
OTHER = repository("team/other")
EXPIRY = 5.0


class CountingDriver(RecordingDriver):
    """Counts the reads the services make of small objects and of object sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def _get_content(self, path: str) -> bytes:
        self.reads += 1
        return await super()._get_content(path)

    async def _stat(self, path: str) -> FileInfo:
        self.reads += 1
        return await super()._stat(path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def driver() -> CountingDriver:
    return CountingDriver()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> DescriptorCache:
    return DescriptorCache(size=100, expiry=EXPIRY, clock=clock)


@pytest.fixture
def storage(driver: CountingDriver, cache: DescriptorCache) -> Storage:
    return Storage(driver, PushGuard(driver), descriptors=cache)


async def reads_of(driver: CountingDriver, times: int, read: Callable[[], Awaitable[object]]) -> int:
    """How many storage reads ``times`` calls of ``read`` make."""
    before = driver.reads
    for _ in range(times):
        await read()
    return driver.reads - before


async def test_repeated_stats_of_a_blob_read_storage_once(storage: Storage, driver: CountingDriver) -> None:
    digest = await put_blob(storage, APP, b"layer" * 100)
    assert await reads_of(driver, 10, lambda: storage.blobs.stat(APP, digest)) == 2  # link, size
    assert await storage.blobs.stat(APP, digest) == 500


async def test_a_fetch_is_remembered_then_left_to_the_cache(
    driver: CountingDriver, cache: DescriptorCache
) -> None:
    driver.reads_are_round_trips = True
    storage = Storage(driver, PushGuard(driver), descriptors=cache)
    digest = await put_blob(storage, APP, b"layer" * 100)
    fetched = await storage.blobs.fetch(APP, digest)
    assert fetched is not None
    assert fetched[0] == 500
    assert b"".join([chunk async for chunk in fetched[1]]) == b"layer" * 100
    # Known now: a fetch leaves it to ``stat``, which answers without storage, then ``open``.
    assert await storage.blobs.fetch(APP, digest) is None
    assert await reads_of(driver, 5, lambda: storage.blobs.stat(APP, digest, fetching=True)) == 0
    # What another repository does not hold is never remembered.
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.fetch(OTHER, digest)
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest)


async def test_without_the_cache_every_stat_reads_storage(driver: CountingDriver) -> None:
    storage = Storage(driver, PushGuard(driver))
    digest = await put_blob(storage, APP, b"layer" * 100)
    assert await reads_of(driver, 10, lambda: storage.blobs.stat(APP, digest)) == 20


async def test_an_absence_is_never_remembered(storage: Storage) -> None:
    digest = Digest.of(b"pushed later")
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest)
    await put_blob(storage, APP, b"pushed later")
    assert await storage.blobs.stat(APP, digest) == len(b"pushed later")


async def test_a_repository_is_remembered_apart_from_another(storage: Storage) -> None:
    digest = await put_blob(storage, APP, b"only in app")
    assert await storage.blobs.stat(APP, digest) == len(b"only in app")
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(OTHER, digest)


async def test_entries_expire(storage: Storage, driver: CountingDriver, clock: Clock) -> None:
    digest = await put_blob(storage, APP, b"expiring")
    await storage.blobs.stat(APP, digest)
    clock.now += EXPIRY - 0.1
    assert await reads_of(driver, 1, lambda: storage.blobs.stat(APP, digest)) == 0
    clock.now += 0.1
    assert await reads_of(driver, 1, lambda: storage.blobs.stat(APP, digest)) == 2


async def test_a_delete_made_elsewhere_is_seen_after_the_expiry(
    storage: Storage, driver: CountingDriver, clock: Clock
) -> None:
    digest = await put_blob(storage, APP, b"deleted by another worker")
    await storage.blobs.stat(APP, digest)
    await driver.delete(paths.layer(APP, digest))  # as another worker or replica would
    assert await storage.blobs.stat(APP, digest) == len(b"deleted by another worker")
    clock.now += EXPIRY
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest)


async def test_a_blob_deleted_through_this_worker_is_unknown_at_once(storage: Storage) -> None:
    digest = await put_blob(storage, APP, b"deleted here")
    await storage.blobs.stat(APP, digest)
    await storage.blobs.unlink(APP, digest)
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest)


async def test_a_stat_in_flight_during_a_delete_leaves_nothing_behind(
    storage: Storage, cache: DescriptorCache
) -> None:
    digest = await put_blob(storage, APP, b"raced")
    since = cache.generation  # a stat read the link before the delete ...
    await storage.blobs.unlink(APP, digest)
    cache.hold_blob(APP, digest, 5, since)  # ... and answers after it
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, digest)


async def test_content_found_gone_when_read_is_forgotten_in_every_repository(
    storage: Storage, driver: CountingDriver
) -> None:
    digest = await put_blob(storage, APP, b"collected")
    await storage.blobs.mount(OTHER, APP, digest)
    for name in (APP, OTHER):
        await storage.blobs.stat(name, digest)
    await driver.delete(paths.blob_data(digest))  # garbage collection, elsewhere
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.open(digest)
    for name in (APP, OTHER):
        with raises(ErrorCode.BLOB_UNKNOWN):
            await storage.blobs.stat(name, digest)


async def test_a_manifest_by_digest_is_checked_once(storage: Storage, driver: CountingDriver) -> None:
    image = random_image(layers=1, layer_size=1000)
    digest = await put_image(storage, APP, image)
    await storage.manifests.get(APP, digest)  # the revision link, and the content once
    assert await reads_of(driver, 10, lambda: storage.manifests.get(APP, digest)) == 0


async def test_a_manifest_deleted_through_this_worker_is_unknown_at_once(storage: Storage) -> None:
    image = random_image(layers=1, layer_size=1000)
    digest = await put_image(storage, APP, image)
    await storage.manifests.get(APP, digest)
    await storage.manifests.delete(APP, digest)
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.manifests.get(APP, digest)


async def test_a_deleted_repository_is_forgotten(storage: Storage, driver: CountingDriver) -> None:
    image = random_image(layers=1, layer_size=1000)
    digest = await put_image(storage, APP, image)
    layer = Digest.parse(image.layers[0].blob.digest)
    await storage.manifests.get(APP, digest)
    await storage.blobs.stat(APP, layer)
    await driver.delete(paths.repository(APP))
    storage.forget_repository(APP)
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.manifests.get(APP, digest)
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, layer)


async def test_a_manifest_push_checks_its_blobs_in_storage_not_in_the_cache(
    storage: Storage, driver: CountingDriver
) -> None:
    image = random_image(layers=1, layer_size=1000)
    for blob in image.blobs:
        await put_blob(storage, APP, blob.data)
    layer = Digest.parse(image.layers[0].blob.digest)
    size = await storage.blobs.stat(APP, layer)  # the client's HEAD, remembered
    await driver.delete(paths.blob_data(layer))  # collected after it
    assert await storage.blobs.stat(APP, layer) == size  # the cache still says it is there
    with raises(ErrorCode.MANIFEST_BLOB_UNKNOWN):
        await storage.manifests.put(
            APP, Digest.parse(image.digest), image.manifest.data, image.manifest.media_type
        )
    # The refusal drops the entry: the client's next HEAD sees the blob is gone and uploads it.
    with raises(ErrorCode.BLOB_UNKNOWN):
        await storage.blobs.stat(APP, layer)


def test_the_oldest_entries_go_first_past_the_size(clock: Clock) -> None:
    cache = DescriptorCache(size=3, expiry=EXPIRY, clock=clock)
    digests = [Digest.of(bytes([n])) for n in range(4)]
    for digest in digests:
        cache.hold_blob(APP, digest, 1, cache.generation)
    assert len(cache) == 3
    assert cache.blob_size(APP, digests[0]) is None
    assert [cache.blob_size(APP, d) for d in digests[1:]] == [1, 1, 1]


def test_expired_entries_are_dropped_as_new_ones_arrive(clock: Clock) -> None:
    cache = DescriptorCache(size=0, expiry=EXPIRY, clock=clock)  # no bound but the expiry
    for n in range(50):
        cache.hold_blob(RepositoryName(f"repo{n}"), Digest.of(b"x"), 1, cache.generation)
    clock.now += EXPIRY
    cache.hold_blob(APP, Digest.of(b"y"), 1, cache.generation)
    assert len(cache) == 1
