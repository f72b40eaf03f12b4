"""The notification queue's order and the delivery lease, between processes whose clocks disagree:
two writers on one storage (a real folder), one of them an hour behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from registry.notifications.queue import LEASE_SECONDS, Lease, Queue, StorageClock
from storage_drivers import StorageDriver, create_driver

HOUR_NS = 3600 * 1_000_000_000


@pytest.fixture
def driver(tmp_path: Path) -> StorageDriver:
    return create_driver("filesystem", {"rootdirectory": str(tmp_path)})


def behind() -> int:
    return time.time_ns() - HOUR_NS


async def test_a_writer_an_hour_behind_queues_in_the_order_writes_happened(driver: StorageDriver) -> None:
    clocks = [StorageClock(driver, "aaaa"), StorageClock(driver, "bbbb", local=behind)]
    measures = 0.0
    for clock in clocks:
        started = time.monotonic()
        await clock.measure()
        measures += time.monotonic() - started
    queues = [Queue(driver, "hooks", clock.probe.rpartition("/")[2], clock) for clock in clocks]
    written = []
    for index in range(6):
        queue = queues[index % 2]
        await queue.put(b'["event %d"]' % index, 1)
        written.append(queue.writer)
        # Apart by more than the two measures' errors (half the time each probe took, which a
        # loaded machine stretches).
        await asyncio.sleep(max(0.1, measures))
    entries = await queues[0].entries()
    assert [entry.key.split("-")[1] for entry in entries] == written
    assert [await queues[0].read(entry) for entry in entries] == [b'["event %d"]' % i for i in range(6)]


class Monotonic:
    """A process's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_renewed_lease_is_never_taken_and_a_dead_holders_is(driver: StorageDriver) -> None:
    holder, other_clock = Lease(driver, "hooks", "aaaa"), Monotonic()
    other = Lease(driver, "hooks", "bbbb", monotonic=other_clock)
    assert await holder.try_take()
    assert not await other.try_take()
    # The holder renews; the other's clock runs far ahead (paused, or just fast): still held.
    for _ in range(3):
        assert await holder.renew()
        other_clock.now += 10 * LEASE_SECONDS
        assert not await other.try_take()
    # The holder stops renewing (killed): once its record stood unchanged for LEASE_SECONDS.
    other_clock.now += LEASE_SECONDS - 1
    assert not await other.try_take()
    other_clock.now += 1
    assert await other.try_take()
    assert not await holder.renew()  # the old holder finds out at its next renewal
    await other.release()
    assert await holder.try_take()  # released: free at once
