"""The maintenance lease: one garbage collection run or repository deletion at a time, across
every process and replica on one storage.

Taking it: read the state record; when it is idle, or its holder's lease has expired by the
storage's clock, write it with a fresh run id, wait ``SETTLE`` seconds, and read it back.
Takers that raced both wrote before either reads back, so both read the same winner and the
other backs off. A taker may read meanwhile (``Claim``): pushes from the claim on take the
careful path; it writes and deletes only once the lease is confirmed. The holder renews the
lease every ``RENEW_EVERY`` seconds and, before each batch of deletes, checks that the record
still names its run and that its last renewal is recent enough to leave ``MARGIN`` seconds of
lease: a holder that lost the lease, or that was paused longer than that, stops before deleting
anything more.

When a holder dies its lease expires ``LEASE_SECONDS`` after its last renewal. Meanwhile pushes
take the careful path, and one that found a marker of the dead run waits; after the expiry the
markers are void (``guard``), and the next run takes the lease over, deletes the dead run's
records and finishes its work (what the dead run planned and did not delete is still garbage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator

from storage_drivers import StorageDriver

from ..references import RunId
from ..storage import paths
from .state import GCState, read_state, storage_now

LEASE_SECONDS = 30.0
RENEW_EVERY = 5.0
MARGIN = 10.0
SETTLE = 2.0
POLL_EVERY = 1.0

log = logging.getLogger("registry")


class LeaseBusy(Exception):
    """Another run holds the lease."""

    def __init__(self, state: GCState) -> None:
        super().__init__(
            f"{state.operation or 'a maintenance run'} {state.run} on {state.holder or 'unknown'}"
        )
        self.state = state


class LeaseLost(Exception):
    """The holder can no longer be sure it holds the lease; it must stop deleting."""


class Lease:
    """A held lease; ``started`` is when it was taken, in the storage's clock, which is
    ``clock_offset`` seconds ahead of this process's."""

    def __init__(
        self,
        driver: StorageDriver,
        run: RunId,
        operation: str,
        started: float,
        clock_offset: float,
        *,
        renewed: float,
    ) -> None:
        self.driver = driver
        self.run = run
        self.operation = operation
        self.started = started
        self._clock_offset = clock_offset
        self._renewed = renewed
        """When the expiry last written was computed (``time.monotonic``)."""
        self._lost = False

    def _record(self, active: bool) -> GCState:
        expires = time.time() + self._clock_offset + LEASE_SECONDS if active else 0.0
        return GCState(self.run, active, expires, _holder(), self.operation)

    async def renew(self) -> None:
        if self._lapsed():
            # Pushes may already treat the lease as expired: a holder that was paused (or could
            # not write) that long never takes it back, even when nobody else took it meanwhile.
            self._lost = True
            raise LeaseLost(f"run {self.run} could not renew its lease in time")
        if (await read_state(self.driver)).run != self.run:
            self._lost = True
            raise LeaseLost(f"run {self.run} lost the lease")
        renewing = time.monotonic()
        await self.driver.put_content(paths.gc_state(), self._record(active=True).encode())
        self._renewed = renewing

    async def check(self) -> None:
        """Raise LeaseLost unless the lease is certainly still this run's for MARGIN seconds."""
        if self._lost or self._lapsed():
            raise LeaseLost(f"run {self.run} cannot renew its lease in time")
        state = await read_state(self.driver)
        if state.run != self.run or not state.active:
            self._lost = True
            raise LeaseLost(f"run {self.run} lost the lease to {state.run}")

    def _lapsed(self) -> bool:
        return time.monotonic() - self._renewed > LEASE_SECONDS - MARGIN

    async def release(self) -> None:
        if (await read_state(self.driver)).run == self.run:
            await self.driver.put_content(paths.gc_state(), self._record(active=False).encode())

    async def keep_renewed(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.renew()
            except LeaseLost:
                return
            except Exception as exc:  # storage hiccup: check() stops deletes once renewals lag
                log.warning("renewing the maintenance lease failed: %s", exc)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Claim:
    """The lease written and not yet confirmed. From the claim on, pushes see the record changed
    and take the careful path, so work that only reads (the mark) may start at once; nothing may
    be written or deleted before ``confirm``, and what was read is dropped when it fails."""

    def __init__(
        self, driver: StorageDriver, claim: GCState, started: float, clock_offset: float, claimed: float
    ) -> None:
        self.driver = driver
        self._claim = claim
        self._started = started
        self._clock_offset = clock_offset
        self._claimed = claimed
        self._written = time.monotonic()

    async def confirm(self) -> Lease:
        """The lease, once the settle time has passed and the record still names this claim's
        run; else raise LeaseBusy."""
        await asyncio.sleep(max(0.0, SETTLE - (time.monotonic() - self._written)))
        winner = await read_state(self.driver)
        run = self._claim.run
        if winner.run != run or run is None:
            raise LeaseBusy(winner)
        lease = Lease(
            self.driver, run, self._claim.operation, self._started, self._clock_offset, renewed=self._claimed
        )
        await lease.renew()  # the settle time is not lost from the lease
        return lease


async def claim(driver: StorageDriver, operation: str) -> Claim:
    """Write a claim of the lease (``Claim.confirm`` then takes it), or raise LeaseBusy."""
    run = RunId(secrets.token_hex(16))
    current = await read_state(driver)
    # Read as listings give it (S3: milliseconds; a stat has whole seconds), just before the
    # claim: the run's start, against which the inventory's listed times are compared. This
    # process's clock is read before the storage's, so the expiries it writes err late.
    claimed = time.monotonic()
    local = time.time()
    now = await storage_now(driver, run)
    if current.active and now <= current.expires:
        raise LeaseBusy(current)
    record = GCState(run, True, now + LEASE_SECONDS, _holder(), operation)
    await driver.put_content(paths.gc_state(), record.encode())
    return Claim(driver, record, now, now - local, claimed)


async def try_take(driver: StorageDriver, operation: str) -> Lease:
    """Take the lease, or raise LeaseBusy."""
    return await (await claim(driver, operation)).confirm()


async def take(driver: StorageDriver, operation: str, wait: float) -> Lease:
    """Take the lease, waiting up to ``wait`` seconds for the current holder to finish."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await try_take(driver, operation)
        except LeaseBusy:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(POLL_EVERY)


@contextlib.asynccontextmanager
async def holding(driver: StorageDriver, operation: str, wait: float) -> AsyncIterator[Lease]:
    """Hold the lease for the block, renewed in the background, released at the end."""
    async with _kept(await take(driver, operation, wait)) as lease:
        yield lease


@contextlib.asynccontextmanager
async def confirmed(claimed: Claim) -> AsyncIterator[Lease]:
    """``holding``, for a lease already claimed."""
    async with _kept(await claimed.confirm()) as lease:
        yield lease


@contextlib.asynccontextmanager
async def _kept(lease: Lease) -> AsyncIterator[Lease]:
    renewing = asyncio.create_task(lease.keep_renewed())
    try:
        yield lease
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await lease.release()
