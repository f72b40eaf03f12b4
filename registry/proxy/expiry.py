"""Cached content leaves the cache after ``ttl`` without use (``ttl: 0`` keeps it).

Each worker notes which manifests and blobs of mirrored repositories it served, and writes the
time of their last use to storage in one batch every few seconds (``_dockyard/mirror/used``), so
a busy mirror writes one small record per item and interval, not one per pull. Content that was
never served since it was cached counts from when it was cached (its link's time).

Downloads a registry abandoned (it stopped while downloading) are removed in the same round,
with ``ttl: 0`` too (see ``fetches.ABANDONED``).

Expiry removes what a mirrored repository has not used for ``ttl``: a manifest with the tags
pointing at it (tags first, as every delete goes), and a blob's link. The blob's bytes stay until
garbage collection finds nothing referencing them, as for any unlinked blob. Every worker runs
expiry; deletes are idempotent, and a random start spreads them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from storage_drivers import PathNotFound, StorageDriver

from ..background import one_round
from ..errors import RegistryError
from ..references import HEX_LENGTHS, Digest, RepositoryName
from ..storage import Storage, paths
from ..storage.catalog import walk_repositories
from .mirrors import Mirror

log = logging.getLogger("registry.proxy")

LONGEST_INTERVAL = 3600.0
SHORTEST_INTERVAL = 0.5


def interval_for(ttl: float) -> float:
    """How often uses are written and expiry runs: often enough that an item in use is never
    older than ``ttl`` on record."""
    return max(SHORTEST_INTERVAL, min(LONGEST_INTERVAL, ttl / 4))


class UseRecorder:
    """The last uses this worker saw, waiting for the next ``flush``."""

    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        self._pending: dict[tuple[RepositoryName, Digest], float] = {}

    def used(self, name: RepositoryName, digest: Digest) -> None:
        self._pending[(name, digest)] = time.time()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for (name, digest), when in pending.items():
            await self._driver.put_content(paths.mirror_used(name, digest), str(when).encode())


class Expiry:
    def __init__(self, storage: Storage, mirror_of: Callable[[RepositoryName], Mirror | None]) -> None:
        self._storage = storage
        self._driver = storage.driver
        self._mirror_of = mirror_of

    async def run(self) -> int:
        """Expire what every mirrored repository left unused for its ``ttl``; how many items."""
        expired = 0
        async for name in walk_repositories(self._driver, paths.MANIFESTS_DIR):
            mirror = self._mirror_of(name)
            if mirror is not None and mirror.upstream.ttl > 0:
                expired += await self._expire(name, time.time() - mirror.upstream.ttl)
        return expired

    async def _expire(self, name: RepositoryName, cutoff: float) -> int:
        expired = 0
        for digest in await self._digests(paths.manifest_revisions(name)):
            if await self._last_use(name, digest, paths.manifest_revision_link(name, digest)) < cutoff:
                with contextlib.suppress(RegistryError):  # deleted meanwhile
                    await self._storage.manifests.delete(name, digest)
                await self._forget(name, digest)
                expired += 1
        for digest in await self._digests(paths.layers(name)):
            if await self._last_use(name, digest, paths.layer_link(name, digest)) < cutoff:
                with contextlib.suppress(PathNotFound):
                    await self._driver.delete(paths.layer(name, digest))
                await self._forget(name, digest)
                expired += 1
        return expired

    async def _digests(self, directory: str) -> list[Digest]:
        digests = []
        try:
            algorithms = await self._driver.list(directory)
        except PathNotFound:
            return []
        for algorithm_dir in algorithms:
            algorithm = algorithm_dir.rsplit("/", 1)[1]
            if algorithm not in HEX_LENGTHS:
                continue
            with contextlib.suppress(PathNotFound):
                for entry in await self._driver.list(algorithm_dir):
                    with contextlib.suppress(RegistryError):  # a foreign entry
                        digests.append(Digest.parse(f"{algorithm}:{entry.rsplit('/', 1)[1]}"))
        return digests

    async def _last_use(self, name: RepositoryName, digest: Digest, link: str) -> float:
        try:
            return float(await self._driver.get_content(paths.mirror_used(name, digest)))
        except (PathNotFound, ValueError):
            pass
        try:
            return (await self._driver.stat(link)).modified
        except PathNotFound:
            return time.time()  # no link: nothing to expire

    async def _forget(self, name: RepositoryName, digest: Digest) -> None:
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(paths.mirror_used(name, digest))


async def keep_expiring(
    recorder: UseRecorder, expiry: Expiry, abandoned: Callable[[], Awaitable[int]], interval: float
) -> None:
    """Write the uses, run expiry and remove ``abandoned`` downloads every ``interval`` seconds,
    until cancelled; the last also at once (a registry that starts may follow one that stopped
    while downloading)."""
    await _remove_abandoned(abandoned)
    await asyncio.sleep(random.uniform(0, interval))  # noqa: S311 - jitter only
    while True:
        with one_round(log, "mirror cache expiry"):
            await recorder.flush()
            expired = await expiry.run()
            if expired:
                log.info("expired %d unused items from the mirror cache", expired)
        await _remove_abandoned(abandoned)
        await asyncio.sleep(interval)


async def _remove_abandoned(abandoned: Callable[[], Awaitable[int]]) -> None:
    with one_round(log, "removing abandoned downloads"):
        removed = await abandoned()
        if removed:
            log.info("removed %d abandoned downloads from the mirror cache", removed)
