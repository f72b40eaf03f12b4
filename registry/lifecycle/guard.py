"""The manifest push's side of the garbage collection protocol (the sweep's side, and why the two
together never lose an acknowledged image, are written down in ``sweep``).

A manifest push is the one place where references are created. It reads the state record
before its existence checks and again after writing its links. When nothing changed and no
run is active, the push is acknowledged: two tiny reads per manifest push, nothing per blob.
Otherwise it writes a "referenced during run R" record for every digest it refers to (the
manifest itself, its blobs, its index children and theirs), then checks again that each still
exists and that run R has not condemned it (nor the repository).

A push that finds a digest in a marker (``markers``) waits for the run's decision instead of
refusing at once: another push of the very same manifest may have been acknowledged just before
the marker was written, and the tags and revision link the two wrote are the same files.
Refusing would withdraw them and break the acknowledged push, so the push waits until

- the run decided (its "decided" record): a digest its markers still list is deleted, and no
  acknowledged push can refer to it (it would have been spared), so the push is refused with
  MANIFEST_BLOB_UNKNOWN and withdraws what it wrote; a digest they no longer list was spared;
- or the run is over, or its lease ran out (its holder deletes nothing more then): whether the
  content is still there decides;
- for a repository marker: it went (the repository stays), or the run is over.

Then the content's presence is checked as for any push. The wait is bounded by the run's lease:
a holder that stops renewing it lets the push go on ``LEASE_SECONDS`` later.

A push refused because content is already gone (no marker involved: a run that ended, a client's
delete) withdraws the same way. An identical push that uploaded that content again and was
acknowledged between this push's check and its withdrawal would lose its tag: tag files carry
only a digest, so a withdrawal cannot tell whose they are. That window is a few storage calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from storage_drivers import PathNotFound, StorageDriver

from ..references import Digest, RepositoryName, RunId
from ..storage import paths
from . import markers
from .state import GCState, read_state

CLOCK_SLACK = 2.0
"""Seconds of disagreement allowed between the storage's timestamps (S3 HEAD has whole seconds)."""
POLL_EVERY = 0.25
"""Seconds between two looks at a run whose decision a push waits for."""


class PushGuard:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def begin(self) -> GCState:
        """Read before the push checks what it refers to."""
        return await read_state(self._driver)

    async def unsafe(
        self,
        before: GCState,
        name: RepositoryName,
        referenced: Callable[[], Awaitable[Collection[Digest]]],
        missing: Callable[[], Awaitable[list[Digest]]],
    ) -> list[Digest]:
        """After the push wrote its links: the digests that make it unsafe to acknowledge (gone,
        or deleted by the active run); empty when the push may be acknowledged. ``referenced`` is
        only called with a run active; with one that condemned any of it, this waits for the
        run's decision (see the module's text)."""
        after = await read_state(self._driver)
        if after == before and not after.active:
            return []
        doomed: list[Digest] = []
        run = after.run
        if after.active and run is not None:
            digests = sorted(await referenced(), key=str)
            await asyncio.gather(
                *(self._driver.put_content(paths.gc_referenced(run, d), b"") for d in digests)
            )
            doomed = await self._decision(run, name, digests)
        gone = await missing()
        return sorted(set(doomed) | set(gone), key=str)

    async def _decision(self, run: RunId, name: RepositoryName, digests: list[Digest]) -> list[Digest]:
        """The digests run ``run`` deletes of those the push recorded (all of them when it deletes
        the repository), once that is decided; empty as soon as nothing of them is condemned, and
        when the run can no longer delete."""
        condemned, repository = await self._markers(run, name, digests)
        while condemned or repository:
            state = await read_state(self._driver)
            if state.run != run or not state.active or await self._expired(run, digests[0], state):
                return []  # the run deletes nothing more: what is still there stays
            # The decision first, the markers after it: a digest listed then is one the run deletes.
            decided = await self._exists(paths.gc_decided(run))
            condemned, repository = await self._markers(run, name, digests)
            if decided and condemned and not repository:
                return condemned
            if condemned or repository:
                await asyncio.sleep(POLL_EVERY)
        return []  # never condemned, or spared

    async def _markers(
        self, run: RunId, name: RepositoryName, digests: list[Digest]
    ) -> tuple[list[Digest], bool]:
        """The digests run ``run`` condemned, and whether it condemned the repository (which
        condemns every digest: the repository's links go)."""
        wanted = sorted({paths.gc_condemned(run, d) for d in digests})
        contents, repository = await asyncio.gather(
            self._driver.get_many(wanted), self._exists(paths.gc_condemned_repository(run, name))
        )
        if repository:
            return digests, True
        listed = set[str]().union(*(markers.listed(c) for c in contents if c is not None))
        return [d for d in digests if str(d) in listed], False

    async def _expired(self, run: RunId, recorded: Digest, state: GCState) -> bool:
        """Whether the run's lease ran out, by the storage's own time: the modification time of
        this push's record, written again now (the holder stops deleting before its expiry)."""
        record = paths.gc_referenced(run, recorded)
        await self._driver.put_content(record, b"")
        try:
            now = (await self._driver.stat(record)).modified
        except PathNotFound:
            return False  # the run ended and removed its records: the next look sees it
        return now > state.expires + CLOCK_SLACK

    async def _exists(self, path: str) -> bool:
        try:
            await self._driver.stat(path)
        except PathNotFound:
            return False
        return True
