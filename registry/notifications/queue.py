"""One endpoint's durable queue, and the lease that lets one process at a time deliver it.

Each entry is one object holding the JSON list of events one request caused (or one batch of
pulls), named ``<time ns>-<writer>-<counter>-<events>-<size>``: names sort in the order the
events happened (a writer's counter breaks ties within a nanosecond; writers are told apart by
a random id per process), and the number of events and bytes in the name let the deliverer
bound the queue from a listing alone. Objects are written with ``put_content`` (atomic, durable) and deleted
only once the endpoint has accepted them.

The lease: a small record naming the holder and when its claim expires. A process takes it
when it is free or expired, writes its claim, waits ``SETTLE`` seconds and reads it back:
processes that raced all wrote before any reads back, so they all read the same winner. The
holder renews it every ``RENEW_EVERY`` seconds; a holder that dies (``kill -9``) leaves a claim
that expires ``LEASE_SECONDS`` later, and another process takes over where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from dataclasses import dataclass

from storage_drivers import PathNotFound, StorageDriver

from ..storage import paths

LEASE_SECONDS = 15.0
RENEW_EVERY = 3.0
SETTLE = 0.5
PAGE = 1000


def new_writer() -> str:
    """A process's part of the queue keys and its name as a lease holder: made per application,
    never at import, so forked workers never share one."""
    return os.urandom(6).hex()


@dataclass(frozen=True, order=True)
class Entry:
    key: str
    events: int
    size: int


class Queue:
    def __init__(self, driver: StorageDriver, endpoint: str, writer: str) -> None:
        self.driver = driver
        self.endpoint = endpoint
        self.writer = writer
        self.counter = itertools.count()

    async def put(self, events: bytes, count: int, when: int | None = None) -> None:
        """Queue the JSON list of ``count`` events, the first of which happened at ``when``
        (nanoseconds since the epoch; None: now)."""
        when = time.time_ns() if when is None else when
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

    def __init__(self, driver: StorageDriver, endpoint: str, writer: str) -> None:
        self.driver = driver
        self.path = paths.notification_lease(endpoint)
        self.writer = writer
        self.renewed = 0.0

    async def _holder(self) -> tuple[str, float]:
        try:
            record = json.loads(await self.driver.get_content(self.path))
            return str(record["holder"]), float(record["expires"])
        except (PathNotFound, ValueError, KeyError, TypeError):
            return "", 0.0

    async def _write(self, expires: float) -> None:
        record = {"holder": self.writer, "expires": expires}
        await self.driver.put_content(self.path, json.dumps(record).encode())

    async def try_take(self) -> bool:
        holder, expires = await self._holder()
        if holder != self.writer and time.time() <= expires:
            return False
        await self._write(time.time() + LEASE_SECONDS)
        await asyncio.sleep(SETTLE)
        holder, _ = await self._holder()
        if holder != self.writer:
            return False
        await self.renew()
        return True

    async def renew(self) -> bool:
        """Extend the claim; False when another process holds it now."""
        holder, _ = await self._holder()
        if holder != self.writer:
            return False
        self.renewed = time.monotonic()
        await self._write(time.time() + LEASE_SECONDS)
        return True

    def fresh(self) -> bool:
        """Whether the last renewal leaves the claim certainly this process's."""
        return time.monotonic() - self.renewed < LEASE_SECONDS - RENEW_EVERY

    async def release(self) -> None:
        holder, _ = await self._holder()
        if holder == self.writer:
            await self._write(0.0)
