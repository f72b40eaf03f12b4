"""The maintenance lease on storage that creates objects exclusively, taken without a settle
time: what the filesystem's tests and the RADOS Gateway's run alike, each on drivers of its own
storage (several drivers on one storage stand for several processes)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from registry.lifecycle import lease as lease_module
from registry.lifecycle.lease import Lease, LeaseBusy, try_take
from registry.lifecycle.state import GCState, read_state, storage_now
from registry.references import RunId
from registry.storage import paths
from storage_drivers import PathNotFound, StorageDriver

SHORT_LEASE = 1.0
"""Seconds a lease lasts in the takeover cases: long enough to claim and confirm in."""


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


async def _until_expired(driver: StorageDriver, expires: float) -> None:
    now = await storage_now(driver, RunId(secrets.token_hex(16)))
    await asyncio.sleep(max(0.0, expires - now) + 0.2)
    assert await storage_now(driver, RunId(secrets.token_hex(16))) > expires
