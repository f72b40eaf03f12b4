"""Which repositories a visitor may pull, by name: what the repository list and search show.

Finding them by walking the catalog on every page view lists every repository's directory:
a quarter of a second for 10,000 repositories on a local disk, far more on S3. So each worker
keeps the sorted names of the last walk (``RepositoryIndex``) and filters that. A worker builds
its list on the first page that needs it, then builds a newer one in the background, without
making anyone wait, once the list is older than ``REFRESH_SECONDS`` or ten times as long as the
last walk took: walking costs a worker at most a tenth of its time, even on a slow storage, and
nothing at all while nobody browses. A new repository appears in lists and search within
seconds (longer on a very large registry on a slow storage); its own pages never wait for that.

Nothing is shared between workers or replicas, so nothing needs keeping in step: each list is
derived from the storage alone.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence

from ..access import Action
from ..references import RepositoryName
from ..storage.catalog import Catalog
from .visitor import Visitor

log = logging.getLogger("dockyard.ui")

REFRESH_SECONDS = 5.0
"""How old a worker's list may grow before a page view starts a newer one."""
WALK_SHARE = 10
"""The list is rebuilt no sooner than this many times as long as the last walk took."""
COLD_WAIT = 0.5
"""How long a page waits for a worker's first list before walking only as far as it needs."""
BATCH = 500
"""Names whose access is decided together."""


class RepositoryIndex:
    """The sorted names of every repository, as of a recent walk of the catalog (per worker)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._names: list[RepositoryName] | None = None
        self._started = 0.0
        self._took = 0.0
        self._building: asyncio.Task[None] | None = None

    async def names(self) -> Sequence[RepositoryName] | None:
        """The names; None while the worker's first walk takes longer than ``COLD_WAIT``."""
        age = time.monotonic() - self._started
        if self._building is None and (
            self._names is None or age >= max(REFRESH_SECONDS, WALK_SHARE * self._took)
        ):
            self._building = asyncio.create_task(self._build())
            self._building.add_done_callback(self._built)
        building = self._building
        if self._names is not None or building is None:
            return self._names
        # The first walk: a storage error reaches the page (503), as it would from the catalog.
        done, _ = await asyncio.wait([building], timeout=COLD_WAIT)
        if done:
            building.result()
        return self._names

    async def pullable(
        self, visitor: Visitor, query: str, after: str | None, limit: int | None
    ) -> tuple[list[RepositoryName], bool]:
        """Up to ``limit`` (None: every one) repositories after ``after`` whose names hold
        ``query`` and which the visitor may pull, in lexical order, and whether more follow."""
        names = await self.names()
        batches = _listed(names, after) if names is not None else _walked(self._catalog, after)
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
        self._started = time.monotonic()
        try:
            names, _ = await self._catalog.page(sys.maxsize, None)
        finally:
            self._took = time.monotonic() - self._started
        self._names = names

    def _built(self, task: asyncio.Task[None]) -> None:
        self._building = None
        if not task.cancelled() and (error := task.exception()) is not None and self._names is not None:
            # The previous list is kept; the next page view after the wait tries again.
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
