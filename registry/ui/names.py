"""Which repositories a visitor may pull, by name: what the repository list and search show.

Finding them by walking the catalog on every page view lists every repository's directory:
a quarter of a second for 10,000 repositories on a local disk, far longer on S3. So each worker
keeps the sorted names of a recent walk (``RepositoryIndex``) and filters that, and the walk is
shared: whoever walks writes the names to one storage record (``paths.ui_repository_names``),
and a worker whose list has grown old reads that record first, walking only when it is old too.
A worker about to walk first writes the old names back as recent for about as long as the walk
should take, so the others keep serving them rather than walk too: every worker and replica on
one storage walks about once per refresh between them, and a worker that starts reads one object
instead of walking.

A list is old after ``REFRESH_SECONDS``, or ten times as long as its walk took when that is
longer, so walking costs at most about a tenth of one worker's time even on a slow storage, and
nothing while nobody browses. An old list is still served while the newer one is made in the
background: a new repository appears in lists and search within seconds (longer on a very large
registry on a slow storage), and its own pages never wait for that.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from storage_drivers import PathNotFound, StorageError

from ..access import Action
from ..references import RepositoryName, is_repository_name
from ..storage import Storage, paths
from ..storage.catalog import Catalog
from .visitor import Visitor

log = logging.getLogger("dockyard.ui")

REFRESH_SECONDS = 5.0
"""How old a worker's list may grow before a page view starts a newer one."""
WALK_SHARE = 10
"""The list is rebuilt no sooner than this many times as long as the last walk took."""
COLD_WAIT = 0.5
"""How long pages wait for a worker's first list (from when it began) before walking the
catalog only as far as each needs."""
CLAIM_WALKS = 2
CLAIM_SECONDS = 2.0
"""A claim to walk holds for twice as long as the last walk took, and two seconds."""
BATCH = 500
"""Names whose access is decided together."""
RECORD_HEADER = "dockyard-repository-names 1"


@dataclass(frozen=True, slots=True)
class Walk:
    """The names one walk of the catalog found."""

    names: list[RepositoryName]
    walked_at: float
    """When the walk began (seconds since the epoch)."""
    took: float
    """Seconds it took."""

    @property
    def lifetime(self) -> float:
        return max(REFRESH_SECONDS, WALK_SHARE * self.took)

    def fresh(self, now: float) -> bool:
        # A record from a replica whose clock runs far ahead is not trusted to be fresh either.
        return -self.lifetime < now - self.walked_at < self.lifetime

    def claimed(self, now: float) -> Walk:
        """These names, fresh again for about as long as walking anew should take: what a worker
        that is about to walk writes first, so that the others keep serving these meanwhile
        instead of walking too (should it never finish, the next one walks soon after)."""
        claim = min(CLAIM_WALKS * self.took + CLAIM_SECONDS, self.lifetime)
        return Walk(self.names, now - self.lifetime + claim, self.took)

    def record(self) -> bytes:
        return "\n".join([f"{RECORD_HEADER} {self.walked_at!r} {self.took!r}", *self.names]).encode()

    @classmethod
    def parse(cls, data: bytes) -> Walk | None:
        """A record's walk; None when it is not one this version writes."""
        try:
            header, *names = data.decode().split("\n")
            kind, walked_at, took = header.rsplit(" ", 2)
            times = float(walked_at), float(took)
        except (UnicodeDecodeError, ValueError):
            return None
        if kind != RECORD_HEADER or not all(math.isfinite(value) and value >= 0 for value in times):
            return None
        # Written by the registry, yet read as any stored text is: only valid names, in order.
        valid = sorted(RepositoryName(name) for name in names if is_repository_name(name))
        return cls(valid, *times)


class RepositoryIndex:
    """The sorted names of every repository, as of a recent walk of the catalog."""

    def __init__(self, storage: Storage, *, shares: bool = True) -> None:
        """``shares``: write the record of each walk (not when the storage is to stay untouched,
        in read-only mode); it is read in any case."""
        self._storage = storage
        self._shares = shares
        self._walk: Walk | None = None
        self._building: asyncio.Task[None] | None = None
        self._cold_until = 0.0

    async def names(self) -> Sequence[RepositoryName] | None:
        """The names; None while a worker's first list takes longer than ``COLD_WAIT``."""
        if self._building is None and (self._walk is None or not self._walk.fresh(time.time())):
            self._building = asyncio.create_task(self._build())
            self._building.add_done_callback(self._built)
            if self._walk is None:
                self._cold_until = time.monotonic() + COLD_WAIT
        building = self._building
        if self._walk is not None or building is None:
            return self._walk.names if self._walk is not None else None
        # The first list: pages wait for it until COLD_WAIT after it began, then walk themselves.
        # A storage error reaches the page (503), as it would from the catalog.
        done, _ = await asyncio.wait([building], timeout=max(0.0, self._cold_until - time.monotonic()))
        if done:
            building.result()
        return self._walk.names if self._walk is not None else None

    async def pullable(
        self, visitor: Visitor, query: str, after: str | None, limit: int | None
    ) -> tuple[list[RepositoryName], bool]:
        """Up to ``limit`` (None: every one) repositories after ``after`` whose names hold
        ``query`` and which the visitor may pull, in lexical order, and whether more follow."""
        names = await self.names()
        batches = _listed(names, after) if names is not None else _walked(self._storage.catalog, after)
        found: list[RepositoryName] = []
        async for batch in batches:
            matching = [name for name in batch if query in name] if query else batch
            allowed = await visitor.allowed(Action.PULL, matching)
            for name, ok in zip(matching, allowed, strict=True):
                if ok:
                    if len(found) == limit:
                        return found, True
                    found.append(name)
        return found, False

    async def _build(self) -> None:
        recorded = await self._recorded()
        if recorded is not None and recorded.fresh(time.time()):
            self._walk = recorded  # another worker's or replica's walk
            return
        if recorded is not None:
            await self._share(recorded.claimed(time.time()))
        walked_at, started = time.time(), time.monotonic()
        names, _ = await self._storage.catalog.page(sys.maxsize, None)
        walk = Walk(names, walked_at, time.monotonic() - started)
        await self._share(walk)
        self._walk = walk  # (after the record: what one worker shows, the others can read)

    async def _share(self, walk: Walk) -> None:
        if not self._shares:
            return
        try:
            await self._storage.driver.put_content(paths.ui_repository_names(), walk.record())
        except StorageError as error:  # a full storage, say: this worker's list still serves
            log.info("could not share the repository list: %s", error)

    async def _recorded(self) -> Walk | None:
        try:
            return Walk.parse(await self._storage.driver.get_content(paths.ui_repository_names()))
        except PathNotFound:
            return None

    def _built(self, task: asyncio.Task[None]) -> None:
        self._building = None
        if not task.cancelled() and (error := task.exception()) is not None and self._walk is not None:
            # The previous list is kept; the next page view tries again.
            log.warning("could not refresh the repository list: %s", error)


async def _listed(names: Sequence[RepositoryName], after: str | None) -> AsyncIterator[list[RepositoryName]]:
    start = bisect.bisect_right(names, after) if after is not None else 0
    for offset in range(start, len(names), BATCH):
        yield list(names[offset : offset + BATCH])


async def _walked(catalog: Catalog, after: str | None) -> AsyncIterator[list[RepositoryName]]:
    """The catalog walked from ``after``, as far as the caller reads."""
    last = after
    while True:
        batch, more = await catalog.page(BATCH, last)
        yield batch
        if not more or not batch:
            return
        last = batch[-1]
