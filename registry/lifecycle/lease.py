"""The maintenance lease: one garbage collection run or repository deletion at a time, across
every process and replica on one storage.

The state record (``state``) says which run holds the lease, whether it is active, and until
when by the storage's clock; pushes read it (``guard``). A taker first reads it: a holder whose
lease has not expired by the storage's clock keeps it. How a taker then wins depends on the
storage.

Storage that creates objects exclusively (``creates_exclusively``: the filesystem's link, S3's
``If-None-Match: *``): every claim creates the next *generation*, ``lease/<n+1>`` after the
highest listed ``lease/<n>``, holding its record (run and an expiry ``LEASE_SECONDS`` after the
storage's time of the claim). It may do so only when generation n's holder is done: its run is
the one the state record names and that record is inactive or expired, or the state record does
not name it yet (its holder died between its create and its write) and the expiry in the file
has passed. Of takers that raced for n+1 exactly one creates it; the others back off. A taker
that created n+1 then lists again and backs off if a higher generation exists: it can only have
created n+1 long after listing n if n+1 had been created and removed meanwhile, and a holder
removes only generations below its own, after it created that one. So each generation has one
creator, who found every earlier holder done, and only the highest holds the lease: no takers'
writes to wait for, and the winner writes the state record at once. A dead holder's lease is
taken over the same way: once the state record (or, before it names the dead run, the dead
run's own file) says its lease expired, the next generation is free.

Other storage: the taker writes the state record with a fresh run id, waits ``SETTLE`` seconds,
and reads it back. Takers that raced both wrote before either reads back, so both read the same
winner and the other backs off. (Every process on one storage must decide alike: a process of
a version that settles does not look at generations.)

Either way the claim is in the state record before anything else happens. A taker may read
meanwhile (``Claim``): pushes from the claim on take the careful path; it writes and deletes
only once the lease is confirmed (the record read back still names its run). The holder renews
the lease every ``RENEW_EVERY`` seconds and, before each batch of deletes, checks that the
record still names its run and that its last renewal is recent enough to leave ``MARGIN``
seconds of lease: a holder that lost the lease, or that was paused longer than that, stops
before deleting anything more. Its lease is counted from before its claim was written, so its
own view of it always ends before the storage's.

When a holder dies its lease expires ``LEASE_SECONDS`` after its last renewal. Meanwhile pushes
take the careful path, and one that found a marker of the dead run waits; after the expiry the
markers are void (``guard``), and the next run takes the lease over, deletes the dead run's
records and finishes its work (what the dead run planned and did not delete is still garbage).

Writes of the state record. Storage without compare-and-swap cannot refuse a stale write, so
the steps around each write make one harmless. A holder sends a write (its claim, each renewal,
its release) only while its own clock gives its lease ``MARGIN`` seconds more; once the write
returned, it writes a clock probe, whose time by the storage is no earlier than the write's, and
lists the generations. A taker writes its record only after its own probe found passed the
expiry it read (the state record's, or, for a claim the record does not name yet, the one in
the claim's file), and creates its generation before that. So while each of the holder's writes
is found to have landed no later than the expiry its previous write set (its claim's: the one in
its file), no expiry a taker can have read had passed when that write landed, and any taker's
record comes after it: nothing was overwritten, and the renewal stands. A write found later
than that (held up: the process paused, the storage slow) ends the lease, expired by the
storage's clock: the holder stops. If a newer generation exists, the holder may have overwritten
its taker's record: unless the record names that taker again already, the holder writes it
back from the newer generation's file, with an expiry no earlier than any that taker could have
written (the storage's time then, plus ``LEASE_SECONDS`` and ``guard.CLOCK_SLACK``), and lists
again until no newer generation appeared: a taker that creates one after that listing writes
its record after this one. A holder that lost the lease, or whose write failed once sent
(whether and when it lands is unknown), writes nothing more, not even its release: the record
expires on its own; a renewal under way when the run ends is let finish, never cancelled.
Between a late write and its repair pushes may see the wrong run; a write sent with ``MARGIN``
seconds to spare lands in time unless the storage holds it that long, the bound the holder's
batches of deletes rely on as well.
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

from storage_drivers import PathNotFound, StorageDriver, StorageError

from ..references import RunId
from ..storage import paths
from .guard import CLOCK_SLACK
from .state import GCState, decode, read_state, storage_now

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
    ``clock_offset`` seconds ahead of this process's. ``generation`` is the lease generation its
    claim created (None on storage that settles instead)."""

    def __init__(
        self,
        driver: StorageDriver,
        run: RunId,
        operation: str,
        started: float,
        clock_offset: float,
        *,
        renewed: float,
        expires: float,
        generation: int | None,
    ) -> None:
        self.driver = driver
        self.run = run
        self.operation = operation
        self.started = started
        self.generation = generation
        self._clock_offset = clock_offset
        self._renewed = renewed
        """When the expiry last written was computed (``time.monotonic``)."""
        self._expires = expires
        """That expiry, in the storage's clock."""
        self._lost = False
        self._ending = asyncio.Event()

    def _record(self, active: bool) -> GCState:
        expires = time.time() + self._clock_offset + LEASE_SECONDS if active else 0.0
        return GCState(self.run, active, expires, _holder(), self.operation)

    async def renew(self) -> None:
        if self._lost or self._lapsed():
            # Pushes may already treat the lease as expired: a holder that was paused (or could
            # not write) that long never takes it back, even when nobody else took it meanwhile.
            self._lost = True
            raise LeaseLost(f"run {self.run} could not renew its lease in time")
        if (await read_state(self.driver)).run != self.run:
            self._lost = True
            raise LeaseLost(f"run {self.run} lost the lease")
        await self._write(active=True)

    async def _write(self, active: bool) -> None:
        """Write this run's record (the module's text says why in this order), or raise LeaseLost
        and hold the lease no more."""
        renewing = time.monotonic()
        record = self._record(active)
        try:
            await _write_state(self.driver, record, self.generation, self._expires, since=self._renewed)
        except BaseException:
            self._lost = True
            raise
        self._renewed = renewing
        self._expires = record.expires

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
        """Set the record inactive; a holder that lost the lease leaves it to expire."""
        if self._lost or self._lapsed() or (await read_state(self.driver)).run != self.run:
            return
        with contextlib.suppress(LeaseLost):
            await self._write(active=False)

    async def keep_renewed(self) -> None:
        """Renew every RENEW_EVERY seconds until ``stop_renewing``. A renewal under way is let
        finish, never cancelled: whether and when a write cut short would land is unknown."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ending.wait(), RENEW_EVERY)
                return
            try:
                await self.renew()
            except LeaseLost:
                return
            except Exception as exc:
                log.warning("renewing the maintenance lease failed: %s", exc)
                if self._lost:  # its write was sent: whether and when it landed is unknown
                    return
                # else only reading the record failed: check() stops deletes once renewals lag

    def stop_renewing(self) -> None:
        self._ending.set()


async def _write_state(
    driver: StorageDriver, record: GCState, generation: int | None, expires: float, *, since: float
) -> None:
    """Write ``record``, the state record of the holder of ``generation`` whose lease runs until
    ``expires`` (the storage's clock) as computed at ``since`` (``time.monotonic``); raise
    LeaseLost, having restored any newer holder's record, unless it landed while that lease held
    and no newer generation exists."""
    run = record.run
    assert run is not None
    if time.monotonic() - since > LEASE_SECONDS - MARGIN:
        raise LeaseLost(f"run {run} could not write its record in time")
    await driver.put_content(paths.gc_state(), record.encode())
    landed = await storage_now(driver, run)  # no earlier than the write
    if generation is not None:
        newest = await _last_generation(driver)
        if newest != generation:
            await _step_back(driver, newest, run)
            raise LeaseLost(f"run {run} lost the lease to generation {newest}")
    if landed > expires:
        raise LeaseLost(f"run {run}'s lease expired by the storage's clock before its record was written")


async def _step_back(driver: StorageDriver, newest: int, run: RunId) -> None:
    """Write back the record of the newest generation's holder, which ``run``'s late write may
    have replaced, with an expiry no earlier than any that holder wrote before (its expiries err
    late, by its clock probe's time, which CLOCK_SLACK bounds)."""
    while True:
        try:
            holder = decode(await driver.get_content(paths.gc_lease(newest)))
        except PathNotFound:
            pass  # removed by a holder newer still, which the listing shows
        else:
            if (await read_state(driver)).run != holder.run:  # else it wrote its own since
                now = await storage_now(driver, run)
                expires = max(holder.expires, now + LEASE_SECONDS + CLOCK_SLACK)
                restored = GCState(holder.run, True, expires, holder.holder, holder.operation)
                await driver.put_content(paths.gc_state(), restored.encode())
        listed = await _last_generation(driver)
        if listed == newest:
            return
        newest = listed


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Claim:
    """The lease written and not yet confirmed. From the claim on, pushes see the record changed
    and take the careful path, so work that only reads (the mark) may start at once; nothing may
    be written or deleted before ``confirm``, and what was read is dropped when it fails."""

    def __init__(
        self,
        driver: StorageDriver,
        claim: GCState,
        started: float,
        clock_offset: float,
        claimed: float,
        *,
        generation: int | None,
    ) -> None:
        self.driver = driver
        self._claim = claim
        self._started = started
        self._clock_offset = clock_offset
        self._claimed = claimed
        self._generation = generation
        self._settle = SETTLE if generation is None else 0.0
        self._written = time.monotonic()

    async def confirm(self) -> Lease:
        """The lease, once the settle time (if any) has passed and the record still names this
        claim's run; else raise LeaseBusy."""
        await asyncio.sleep(max(0.0, self._settle - (time.monotonic() - self._written)))
        winner = await read_state(self.driver)
        run = self._claim.run
        if winner.run != run or run is None:
            raise LeaseBusy(winner)
        lease = Lease(
            self.driver,
            run,
            self._claim.operation,
            self._started,
            self._clock_offset,
            renewed=self._claimed,
            expires=self._claim.expires,
            generation=self._generation,
        )
        if self._settle:
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
    generation = None
    if driver.creates_exclusively:
        generation = await _create_generation(driver, record, current, now)
    try:
        await _write_state(driver, record, generation, record.expires, since=claimed)
    except LeaseLost:
        raise LeaseBusy(await read_state(driver)) from None
    if generation is not None:
        await _remove_generations_below(driver, generation)
    return Claim(driver, record, now, now - local, claimed, generation=generation)


async def _create_generation(driver: StorageDriver, record: GCState, current: GCState, now: float) -> int:
    """Create the lease's next generation holding ``record``, or raise LeaseBusy (the module's
    text says why that is safe); ``current`` is the state record as read at ``now``."""
    last = await _last_generation(driver)
    if last:
        try:
            holder = decode(await driver.get_content(paths.gc_lease(last)))
        except PathNotFound:
            raise LeaseBusy(current) from None  # removed by a newer holder since the listing
        # The state record judges its own run (above); a claim it does not name yet lasts as
        # long as the expiry its file carries.
        if holder.run != current.run and now <= holder.expires:
            raise LeaseBusy(holder)
    mine = last + 1
    encoded = record.encode()
    if not await driver.create_content(paths.gc_lease(mine), encoded):
        # S3 answers a create it retried after a lost answer as refused, though it stored it.
        try:
            stored = await driver.get_content(paths.gc_lease(mine))
        except PathNotFound:
            stored = b""
        if stored != encoded:
            raise LeaseBusy(decode(stored) if stored else current)
    if await _last_generation(driver) != mine:
        raise LeaseBusy(current)  # created long after the listing, once a newer one removed it
    return mine


async def _last_generation(driver: StorageDriver) -> int:
    try:
        listed = await driver.list(paths.gc_leases())
    except PathNotFound:
        return 0
    generations = [g for g in map(paths.gc_lease_generation, listed) if g is not None]
    return max(generations, default=0)


async def _remove_generations_below(driver: StorageDriver, generation: int) -> None:
    """Best effort: earlier generations decide nothing once a later one exists."""
    try:
        listed = await driver.list(paths.gc_leases())
        earlier = [p for p in listed if (paths.gc_lease_generation(p) or generation) < generation]
        await driver.delete_many(earlier)
    except (PathNotFound, StorageError) as exc:
        log.warning("maintenance lease: earlier generations are left for the next run: %s", exc)


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
        lease.stop_renewing()
        await renewing
        await lease.release()
