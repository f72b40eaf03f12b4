"""The manifest push's side of the garbage collection protocol (the sweep's side, and why the two
together never lose an acknowledged image, are written down in ``sweep``).

A manifest push is the one place where references are created. It reads the state record
before its existence checks and again after writing its links. When nothing changed and no
run is active, the push is acknowledged: two tiny reads per manifest push, nothing per blob.
Otherwise it writes a "referenced during run R" record for every digest it refers to (the
manifest itself included), then checks again that each still exists and that run R has not
condemned it (nor the repository). Any failure refuses the push with MANIFEST_BLOB_UNKNOWN:
the client uploads again; the registry never acknowledges an image a run is deleting.

A refused push withdraws the tags it wrote (those still naming its manifest) and the revision
link it created, so nothing visible points at what the run deletes. Two pushes of the very same
manifest to the same repository, one checked just before a marker and one just after, can
therefore lose the acknowledged one's tag or revision (never leave it pointing at deleted content).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from storage_drivers import PathNotFound, StorageDriver

from ..references import Digest, RepositoryName
from ..storage import paths
from .state import GCState, read_state

CLOCK_SLACK = 2.0
"""Seconds of disagreement allowed between the storage's timestamps (S3 HEAD has whole seconds)."""


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
        referenced: Collection[Digest],
        missing: Callable[[], Awaitable[list[Digest]]],
    ) -> list[Digest]:
        """After the push wrote its links: the digests that make it unsafe to acknowledge (gone,
        or condemned by the active run); empty when the push may be acknowledged."""
        after = await read_state(self._driver)
        if after == before and not after.active:
            return []
        condemned: list[Digest] = []
        run = after.run
        if after.active and run is not None:
            await asyncio.gather(
                *(self._driver.put_content(paths.gc_referenced(run, d), b"") for d in referenced)
            )
            condemned = await self._condemned(after, name, referenced)
        gone = await missing()
        return sorted(set(condemned) | set(gone), key=str)

    async def _condemned(
        self, state: GCState, name: RepositoryName, digests: Collection[Digest]
    ) -> list[Digest]:
        assert state.run is not None
        run = state.run
        ordered = list(digests)
        found = await asyncio.gather(
            *(self._exists(paths.gc_condemned(run, d)) for d in ordered),
            self._exists(paths.gc_condemned_repository(run, name)),
        )
        condemned = [d for d, hit in zip(ordered, found, strict=False) if hit]
        if found[-1]:
            condemned = ordered  # the repository itself is being deleted
        if condemned and not await self._lease_holds(state, ordered[0]):
            return []  # the markers of a run whose lease ran out are void
        return condemned

    async def _lease_holds(self, state: GCState, recorded: Digest) -> bool:
        """Whether the run's lease was still valid when this push wrote its records, judged by the
        storage's own time for one of them (the holder stops deleting before its expiry)."""
        assert state.run is not None
        try:
            written = (await self._driver.stat(paths.gc_referenced(state.run, recorded))).modified
        except PathNotFound:
            return True  # the run ended and removed its records meanwhile: refusing is the safe side
        if written <= state.expires + CLOCK_SLACK:
            return True
        now = await read_state(self._driver)
        return now.run == state.run and now.active and written <= now.expires + CLOCK_SLACK

    async def _exists(self, path: str) -> bool:
        try:
            await self._driver.stat(path)
        except PathNotFound:
            return False
        return True
