"""The maintenance lease on storage that creates objects exclusively, taken without a settle
time: what the filesystem's tests and the RADOS Gateway's run alike, each on drivers of its own
storage (several drivers on one storage stand for several processes).

A holder held up around a write of the state record (``held``: its process paused after reading
the record, or its write slow to reach the storage) until its lease expired and another run took
it over never leaves its record over the new holder's, and stops."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from registry.lifecycle import lease as lease_module
from registry.lifecycle.lease import Lease, LeaseBusy, LeaseLost, try_take
from registry.lifecycle.state import GCState, decode, read_state, storage_now
from registry.references import RunId
from registry.storage import paths
from storage_drivers import PathNotFound, StorageDriver
from tests.lifecycle.gates import first, held

SHORT_LEASE = 1.0
"""Seconds a lease lasts in the takeover cases: long enough to claim and confirm in."""
HELD_LEASE = 3.0
"""Seconds a lease lasts in the held-up cases: long enough to take it and start a renewal in."""


async def generations(driver: StorageDriver) -> list[int]:
    try:
        listed = await driver.list(paths.gc_leases())
    except PathNotFound:
        return []
    return [g for g in map(paths.gc_lease_generation, listed) if g is not None]


async def exactly_one_of_many_takers_wins(drivers: list[StorageDriver]) -> None:
    assert all(driver.creates_exclusively for driver in drivers)
    results = await asyncio.gather(
        *(try_take(driver, "garbage-collect") for driver in drivers), return_exceptions=True
    )
    won = [result for result in results if isinstance(result, Lease)]
    assert len(won) == 1, results
    assert all(isinstance(result, LeaseBusy) for result in results if result not in won), results
    (lease,) = won
    state = await read_state(drivers[0])
    assert state.run == lease.run
    assert state.active
    assert len(await generations(drivers[0])) == 1  # decided by one exclusive create
    await lease.release()
    again = await try_take(drivers[-1], "garbage-collect")  # the next run takes it at once
    assert len(await generations(drivers[0])) == 1  # the earlier generation went
    await again.release()


async def a_dead_holders_lease_is_taken_over_once_it_expired(
    driver: StorageDriver, other: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_module, "LEASE_SECONDS", SHORT_LEASE)
    monkeypatch.setattr(lease_module, "MARGIN", 0.0)
    dead = await try_take(driver, "garbage-collect")  # then never renewed nor released
    with pytest.raises(LeaseBusy):
        await try_take(other, "garbage-collect")
    assert (await read_state(other)).run == dead.run
    await _until_expired(other, dead.started + SHORT_LEASE)
    taken = await try_take(other, "garbage-collect")
    assert (await read_state(other)).run == taken.run
    with pytest.raises(LeaseBusy):
        await try_take(driver, "garbage-collect")
    await taken.release()


async def a_claim_its_holder_never_recorded_is_taken_over_once_it_expired(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that died between creating its generation and writing the state record: the
    expiry in its generation's file decides."""
    monkeypatch.setattr(lease_module, "LEASE_SECONDS", SHORT_LEASE)
    monkeypatch.setattr(lease_module, "MARGIN", 0.0)
    earlier = await try_take(driver, "garbage-collect")
    await earlier.release()
    (last,) = await generations(driver)
    now = await storage_now(driver, RunId(secrets.token_hex(16)))
    unrecorded = GCState(RunId(secrets.token_hex(16)), True, now + SHORT_LEASE, "dead", "garbage-collect")
    assert await driver.create_content(paths.gc_lease(last + 1), unrecorded.encode())
    with pytest.raises(LeaseBusy):
        await try_take(driver, "garbage-collect")
    assert (await read_state(driver)).run == earlier.run  # the state record never named it
    await _until_expired(driver, unrecorded.expires)
    taken = await try_take(driver, "garbage-collect")
    assert await generations(driver) == [last + 2]
    await taken.release()


def _state_record(path: str) -> bool:
    return path == paths.gc_state()


async def _held_up(
    driver: StorageDriver,
    other: StorageDriver | None,
    monkeypatch: pytest.MonkeyPatch,
    step: Callable[[Lease], Coroutine[Any, Any, None]],
    *,
    after_reading: bool,
) -> tuple[Lease, Lease | None, asyncio.Task[None]]:
    """A holder on ``driver`` starts ``step`` and is held up (after reading the state record, or
    in its write of it) until its lease expired and, with ``other``, another run took it over
    there; returns the holder, the taker and the step, let go."""
    monkeypatch.setattr(lease_module, "LEASE_SECONDS", HELD_LEASE)
    monkeypatch.setattr(lease_module, "MARGIN", 0.0)
    holder = await try_take(driver, "garbage-collect")
    expires = (await read_state(driver)).expires
    if after_reading:
        gate = held(driver, "get_content", _state_record, after=True)
    else:
        gate = held(driver, "put_content", _state_record)
    stepping = asyncio.create_task(step(holder))
    await first(gate.reached, stepping)
    assert not stepping.done(), stepping
    await _until_expired(other or driver, expires)
    taker = await try_take(other, "delete-repository") if other is not None else None
    gate.open()
    return holder, taker, stepping


async def _holds(taker: Lease, holder: Lease) -> None:
    """The state record is the taker's, active, and its holder may go on; the other stops."""
    state = await read_state(taker.driver)
    assert (state.run, state.active, state.operation) == (taker.run, True, "delete-repository")
    await taker.check()
    with pytest.raises(LeaseLost):
        await holder.check()
    await holder.release()  # writes nothing
    assert (await read_state(taker.driver)).run == taker.run
    await taker.renew()
    await taker.release()
    assert not (await read_state(taker.driver)).active


async def a_renewal_held_up_past_a_takeover_leaves_the_new_holders_record(
    driver: StorageDriver, other: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its write reaches the storage after the takeover: the holder writes the taker's record
    back and stops."""
    holder, taker, renewing = await _held_up(driver, other, monkeypatch, Lease.renew, after_reading=False)
    assert taker is not None
    with pytest.raises(LeaseLost):
        await renewing
    await _holds(taker, holder)


async def a_release_held_up_past_a_takeover_leaves_the_new_holders_record(
    driver: StorageDriver, other: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, taker, releasing = await _held_up(driver, other, monkeypatch, Lease.release, after_reading=False)
    assert taker is not None
    await releasing
    await _holds(taker, holder)


async def a_holder_paused_between_reading_and_writing_its_record_writes_nothing(
    driver: StorageDriver, other: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused after it read its own run in the record, taken over meanwhile: its lease lapsed
    by its own clock, so it does not write."""
    holder, taker, renewing = await _held_up(driver, other, monkeypatch, Lease.renew, after_reading=True)
    assert taker is not None
    with pytest.raises(LeaseLost):
        await renewing
    await _holds(taker, holder)


async def a_renewal_that_lands_after_the_expiry_stops_the_holder(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody took the lease over, but the renewal reached the storage after the expiry it was
    to extend: the holder stops all the same (pushes may have taken its markers as void)."""
    holder, _, renewing = await _held_up(driver, None, monkeypatch, Lease.renew, after_reading=False)
    with pytest.raises(LeaseLost):
        await renewing
    with pytest.raises(LeaseLost):
        await holder.check()
    await holder.release()  # writes nothing: its write could as well land over a taker's
    state = await read_state(driver)
    assert (state.run, state.active) == (holder.run, True)


async def a_claim_held_up_past_a_takeover_leaves_the_new_holders_record(
    driver: StorageDriver, other: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taker whose write of its claim is held up after it created its generation: once the
    expiry in that generation's file passed, another run takes the lease over; the late claim
    backs off and leaves the newer holder's record."""
    monkeypatch.setattr(lease_module, "LEASE_SECONDS", HELD_LEASE)
    monkeypatch.setattr(lease_module, "MARGIN", 0.0)
    writing = held(driver, "put_content", _state_record)
    claiming = asyncio.create_task(try_take(driver, "garbage-collect"))
    await first(writing.reached, claiming)
    assert not claiming.done(), claiming
    (generation,) = await generations(other)
    unrecorded = decode(await other.get_content(paths.gc_lease(generation)))
    await _until_expired(other, unrecorded.expires)
    taker = await try_take(other, "delete-repository")
    writing.open()
    with pytest.raises(LeaseBusy):
        await claiming
    state = await read_state(other)
    assert (state.run, state.active) == (taker.run, True)
    await taker.check()
    await taker.release()


async def _until_expired(driver: StorageDriver, expires: float) -> None:
    now = await storage_now(driver, RunId(secrets.token_hex(16)))
    await asyncio.sleep(max(0.0, expires - now) + 0.2)
    assert await storage_now(driver, RunId(secrets.token_hex(16))) > expires
