"""One endpoint's durable queue, and the lease that lets one process at a time deliver it.

Each entry is one object holding the JSON list of events one request caused (or one batch of
pulls), named ``<time ns>-<writer>-<counter>-<events>-<size>``: names sort in the order the
events happened (a writer's counter breaks ties within a nanosecond; writers are told apart by
a random id per process), and the number of events and bytes in the name let the deliverer
bound the queue from a listing alone. Objects are written with ``put_content`` (atomic, durable) and deleted
only once the endpoint has accepted them.

The time in a name is the storage's (``StorageClock``): each process measures how far its own
clock is from the storage's when it starts and every ``CLOCK_EVERY`` seconds, so replicas whose
clocks disagree still queue in the order their writes were answered (to within the time one
probe takes).

The lease: a small record naming the holder and how many times it renewed its claim. A process
takes it when it is free, or when the record has not changed for ``LEASE_SECONDS`` by the
taker's own monotonic clock: no process compares its clock with another's, so a skewed clock
can neither steal a live holder's lease nor keep a dead one's. A taker writes its claim, waits
``SETTLE`` seconds and reads it back: processes that raced all wrote before any reads back, so
they all read the same winner. The holder renews it every ``RENEW_EVERY`` seconds and stops
delivering once its last renewal is ``LEASE_SECONDS - RENEW_EVERY`` old, before anyone can
judge it dead; a holder that dies (``kill -9``) leaves a record that stops changing, and
``LEASE_SECONDS`` later another process takes over where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage_drivers import PathNotFound, StorageDriver

from ..lifecycle.state import storage_time
from ..storage import paths

log = logging.getLogger("registry.notifications")

CLOCK_EVERY = 60.0
"""Seconds between measures of the storage's clock."""
LEASE_SECONDS = 15.0
RENEW_EVERY = 3.0
SETTLE = 0.5
PAGE = 1000


def new_writer() -> str:
    """A process's part of the queue keys and its name as a lease holder: made per application,
    never at import, so forked workers never share one."""
    return os.urandom(6).hex()


class StorageClock:
    """The storage's time in nanoseconds since the epoch: ``local`` (this process's clock) plus
    the offset last measured against the storage."""

    def __init__(self, driver: StorageDriver, writer: str, local: Callable[[], int] = time.time_ns) -> None:
        self.driver = driver
        self.probe = paths.notification_clock(writer)
        self.local = local
        self.offset = 0

    def now(self) -> int:
        return self.local() + self.offset

    async def measure(self) -> None:
        before = self.local()
        stored = await storage_time(self.driver, self.probe)
        after = self.local()
        self.offset = round(stored * 1e9) - (before + after) // 2

    async def keep_measuring(self) -> None:
        """Measure now and every ``CLOCK_EVERY`` seconds; a failure keeps the last offset."""
        while True:
            try:
                await self.measure()
            except Exception as exc:
                log.warning("reading the notification queue's storage clock failed: %s", exc)
            await asyncio.sleep(CLOCK_EVERY)


@dataclass(frozen=True, order=True)
class Entry:
    key: str
    events: int
    size: int


class Queue:
    def __init__(self, driver: StorageDriver, endpoint: str, writer: str, clock: StorageClock) -> None:
        self.driver = driver
        self.endpoint = endpoint
        self.writer = writer
        self.clock = clock
        self.counter = itertools.count()

    async def put(self, events: bytes, count: int, when: int | None = None) -> None:
        """Queue the JSON list of ``count`` events, the first of which happened at ``when``
        (the storage clock's nanoseconds; None: now)."""
        when = self.clock.now() if when is None else when
        key = f"{when:019d}-{self.writer}-{next(self.counter)}-{count}-{len(events)}"
        await self.driver.put_content(paths.notification(self.endpoint, key), events)

    async def entries(self, limit: int | None = None) -> list[Entry]:
        """The oldest ``limit`` entries (all when None), oldest first."""
        found: list[Entry] = []
        after: str | None = None
        directory = paths.notification_queue(self.endpoint)
        while limit is None or len(found) < limit:
            page = min(PAGE, limit - len(found)) if limit is not None else PAGE
            try:
                listed = await self.driver.list(directory, after=after, limit=page)
            except PathNotFound:
                break
            for path in listed:
                name = path.rpartition("/")[2]
                parts = name.split("-")
                if len(parts) == 5 and parts[3].isdigit() and parts[4].isdigit():
                    found.append(Entry(name, int(parts[3]), int(parts[4])))
            if len(listed) < page:
                break
            after = listed[-1].rpartition("/")[2]
        return found

    async def read(self, entry: Entry) -> bytes | None:
        """The entry's events, or None when it is gone (delivered or dropped meanwhile)."""
        try:
            return await self.driver.get_content(paths.notification(self.endpoint, entry.key))
        except PathNotFound:
            return None

    async def remove(self, entry: Entry) -> None:
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.notification(self.endpoint, entry.key))


class Lease:
    """The claim to deliver one endpoint's queue."""

    def __init__(
        self,
        driver: StorageDriver,
        endpoint: str,
        writer: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.path = paths.notification_lease(endpoint)
        self.writer = writer
        self.monotonic = monotonic
        self.renewed = -math.inf
        self.renewals = 0
        self.seen: tuple[str, int] | None = None
        """The record as last read by ``try_take``, and since when (``seen_at``) it is unchanged."""
        self.seen_at = 0.0

    async def _record(self) -> tuple[str, int]:
        """The holder ("" when free) and its count of renewals."""
        try:
            record = json.loads(await self.driver.get_content(self.path))
            return str(record["holder"]), int(record.get("renewals", 0))
        except (PathNotFound, ValueError, KeyError, TypeError, AttributeError):
            return "", 0

    async def _write(self, holder: str) -> None:
        self.renewals += 1
        record = {"holder": holder, "renewals": self.renewals}
        await self.driver.put_content(self.path, json.dumps(record).encode())

    async def try_take(self) -> bool:
        record = await self._record()
        now = self.monotonic()
        if record != self.seen:
            self.seen, self.seen_at = record, now
        holder, renewals = record
        if holder and holder != self.writer and now - self.seen_at < LEASE_SECONDS:
            return False
        self.renewals = max(self.renewals, renewals)  # a new record, never one seen before
        await self._write(self.writer)
        await asyncio.sleep(SETTLE)
        holder, _ = await self._record()
        if holder != self.writer:
            return False
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the claim; False when another process holds it now."""
        holder, _ = await self._record()
        if holder != self.writer:
            return False
        renewing = self.monotonic()
        await self._write(self.writer)
        self.renewed = renewing
        return True

    def fresh(self) -> bool:
        """Whether the last renewal leaves the claim certainly this process's: nobody judges a
        record dead before it has stood unchanged for ``LEASE_SECONDS``."""
        return self.monotonic() - self.renewed < LEASE_SECONDS - RENEW_EVERY

    async def release(self) -> None:
        holder, _ = await self._record()
        if holder == self.writer:
            await self._write("")
