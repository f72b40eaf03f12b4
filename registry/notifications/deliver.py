"""Delivering one endpoint's queue, oldest first, by the one process holding its lease.

The oldest entries are posted together as one envelope (``{"events": [...]}``) and deleted
once the endpoint answered 2xx (after following redirects); until then they are posted again,
so delivery is at least once and in order. Failures count as Distribution's ``threshold`` and ``backoff`` mean
them: up to ``threshold`` failures in a row are retried at once, then every attempt waits
``backoff``. Every endpoint has its own task, so a slow or dead one delays no other, and no
request ever waits for a delivery.

The bound: while it holds the lease, the deliverer keeps the queue within the endpoint's
``maxevents`` events and ``maxbytes`` bytes, dropping the oldest with a warning and the
``registry_notifications_events_total{outcome="dropped"}`` metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from ..config import Endpoint
from ..observability.metrics import Metrics
from .queue import RENEW_EVERY, Entry, Lease, Queue

log = logging.getLogger("registry.notifications")

IDLE_POLL = 0.5
"""Seconds between listings of an empty queue: events other processes queued wait that long."""
LEASE_POLL = 2.0
"""Seconds between attempts of a process without the lease to take it."""
BOUND_EVERY = 1.0
"""Seconds between checks of the queue's bound while deliveries fail."""
BATCH = 100
"""Entries listed at a time."""
ENVELOPE_ENTRIES = 50
ENVELOPE_BYTES = 1 << 20
"""At most this many entries, and about this many bytes, are sent in one envelope (Distribution
too may put unrelated events in one)."""


class Deliverer:
    def __init__(self, endpoint: Endpoint, queue: Queue, lease: Lease, metrics: Metrics | None) -> None:
        self.endpoint = endpoint
        self.queue = queue
        self.lease = lease
        self.metrics = metrics
        self.wake = asyncio.Event()
        self.failures = 0
        self.bounded_at = 0.0
        headers = [(name, value) for name, values in endpoint.headers.items() for value in values]
        self.client = httpx.AsyncClient(
            timeout=endpoint.timeout, follow_redirects=True, headers=httpx.Headers(headers)
        )

    async def run(self) -> None:
        """Forever: take the lease when it is free, deliver while holding it."""
        try:
            while True:
                try:
                    if await self.lease.try_take():
                        await self._holding()
                except Exception as exc:  # storage hiccup: try again after a pause
                    log.warning("notifications to %s: %s", self.endpoint.name, exc)
                await asyncio.sleep(LEASE_POLL)
        finally:
            await self.client.aclose()

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await self.lease.release()

    async def _holding(self) -> None:
        renewing = asyncio.create_task(self._renew())
        try:
            while not renewing.done() and self.lease.fresh():
                if not await self._deliver_some():
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), IDLE_POLL)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                if not await self.lease.renew():
                    return
            except Exception as exc:  # fresh() stops deliveries once renewals lag
                log.warning("renewing the notifications lease of %s failed: %s", self.endpoint.name, exc)

    async def _deliver_some(self) -> bool:
        """Deliver a batch of the oldest entries; False when the queue was empty."""
        entries = await self.queue.entries(limit=BATCH)
        if not entries:
            return False
        if len(entries) == BATCH or self.failures:
            entries = await self._bound(entries)
        while entries:
            if not self.lease.fresh():
                return True
            group = _leading(entries)
            entries = entries[len(group) :]
            contents = await asyncio.gather(*(self.queue.read(entry) for entry in group))
            present = [(entry, content) for entry, content in zip(group, contents, strict=True) if content]
            if present:
                # Each entry is a JSON list: their items, in order, make one envelope's list.
                events = b"[" + b",".join(content[1:-1] for _, content in present) + b"]"
                while not await self._post(events, sum(entry.events for entry, _ in present)):
                    await self._pause()
                    if not self.lease.fresh():
                        return True
                    recently = time.monotonic() - self.bounded_at <= BOUND_EVERY
                    if not recently and await self._bound(group) != group:
                        return True  # some were dropped while they failed: list again
            await asyncio.gather(*(self.queue.remove(entry) for entry in group))
        return True

    async def _post(self, events: bytes, count: int) -> bool:
        body = b'{"events":' + events + b"}"
        try:
            response = await self.client.post(
                self.endpoint.url, content=body, headers={"Content-Type": self.endpoint.media_type}
            )
        except httpx.HTTPError as exc:
            return self._failed(f"error posting: {exc!r}")
        if not response.is_success:
            return self._failed(f"answered {response.status_code}")
        self.failures = 0
        if self.metrics is not None:
            self.metrics.add(self.metrics.notification_events, self.endpoint.name, "sent", amount=count)
        return True

    def _failed(self, why: str) -> bool:
        self.failures += 1
        if self.metrics is not None:
            self.metrics.add(self.metrics.notification_errors, self.endpoint.name)
        log.warning("notifications to %s (%s): %s; retrying", self.endpoint.name, self.endpoint.url, why)
        return False

    async def _pause(self) -> None:
        if self.failures >= self.endpoint.threshold:
            await asyncio.sleep(self.endpoint.backoff)
        else:
            await asyncio.sleep(0)

    async def _bound(self, batch: list[Entry]) -> list[Entry]:
        """Drop the oldest entries past the bound; what is left of ``batch``."""
        self.bounded_at = time.monotonic()
        entries = await self.queue.entries()
        events = sum(entry.events for entry in entries)
        size = sum(entry.size for entry in entries)
        dropped: list[Entry] = []
        endpoint = self.endpoint
        for entry in entries:
            if events <= endpoint.max_events and size <= endpoint.max_bytes:
                break
            dropped.append(entry)
            events -= entry.events
            size -= entry.size
        if not dropped:
            return batch
        for entry in dropped:
            await self.queue.remove(entry)
        lost = sum(entry.events for entry in dropped)
        log.warning(
            "notifications to %s: the queue is past its bound (%d events, %d bytes); dropped the "
            "oldest %d events, %d left",
            endpoint.name, endpoint.max_events, endpoint.max_bytes, lost, events,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.add(self.metrics.notification_events, endpoint.name, "dropped", amount=lost)
        gone = set(dropped)
        return [entry for entry in batch if entry not in gone]


def _leading(entries: list[Entry]) -> list[Entry]:
    """The oldest entries that go in one envelope (at least one)."""
    size = 0
    for count, entry in enumerate(entries[:ENVELOPE_ENTRIES]):
        size += entry.size
        if count and size > ENVELOPE_BYTES:
            return entries[:count]
    return entries[:ENVELOPE_ENTRIES]
