"""The maintenance lease's holder: once its last renewal is too old for it to be sure of the lease
(pushes may already take its markers as void), it never renews it again, even though nobody took
the lease meanwhile, and it deletes nothing more. A collection that lost the race for the lease
while it walked the storage drops what it found and changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from pathlib import Path

import pytest

from registry.lifecycle import lease as lease_module
from registry.lifecycle.collect import Options, garbage_collect
from registry.lifecycle.lease import LeaseBusy, LeaseLost, try_take
from registry.lifecycle.state import GCState, read_state
from registry.references import Digest, RunId
from registry.storage import paths
from storage_drivers.filesystem import FilesystemDriver
from tests.lifecycle import lease_cases
from tests.lifecycle.gates import GatedDriver, first


async def test_a_holder_whose_lease_lapsed_cannot_renew_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FilesystemDriver(str(tmp_path))
    lease = await try_take(driver, "garbage-collect")
    await lease.renew()
    await lease.check()
    # No margin left: any time since the last renewal is longer than the holder may rely on (as
    # after a pause of the holder's process longer than the lease minus its margin).
    monkeypatch.setattr(lease_module, "MARGIN", lease_module.LEASE_SECONDS)
    with pytest.raises(LeaseLost):
        await lease.renew()
    assert (await read_state(driver)).run == lease.run  # nobody else took it
    monkeypatch.undo()
    with pytest.raises(LeaseLost):
        await lease.check()  # lost for good


async def test_a_collection_that_loses_the_race_for_the_lease_changes_nothing(tmp_path: Path) -> None:
    """On storage that cannot create exclusively: the claim settles, then is read back."""
    data = os.urandom(64)
    orphan = Digest("sha256", hashlib.sha256(data).hexdigest())
    await FilesystemDriver(str(tmp_path)).put_content(paths.blob_data(orphan), data)
    collector = GatedDriver(str(tmp_path))
    collector.creates_exclusively = False
    claimed = collector.gate("put", lambda path: path == paths.gc_state(), closed=False)
    run = asyncio.create_task(garbage_collect(collector, Options(grace_period=0.0), lambda line: None))
    await first(claimed.reached, run)
    assert not run.done(), run

    # Another taker's claim, written after this one's and before it reads the record back.
    rival = GCState(RunId(secrets.token_hex(16)), True, (await read_state(collector)).expires, "rival")
    await FilesystemDriver(str(tmp_path)).put_content(paths.gc_state(), rival.encode())

    with pytest.raises(LeaseBusy):
        await run
    assert (tmp_path / paths.blob_data(orphan).lstrip("/")).is_file()
    assert not (tmp_path / paths.GC.lstrip("/") / "runs").exists()
    assert await read_state(collector) == rival


async def test_of_many_takers_at_once_exactly_one_takes_the_lease(tmp_path: Path) -> None:
    await lease_cases.exactly_one_of_many_takers_wins([FilesystemDriver(str(tmp_path)) for _ in range(8)])


async def test_a_dead_holders_lease_is_taken_over_once_it_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_dead_holders_lease_is_taken_over_once_it_expired(
        FilesystemDriver(str(tmp_path)), FilesystemDriver(str(tmp_path)), monkeypatch
    )


async def test_a_claim_its_holder_never_recorded_is_taken_over_once_it_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_claim_its_holder_never_recorded_is_taken_over_once_it_expired(
        FilesystemDriver(str(tmp_path)), monkeypatch
    )


async def test_a_taker_that_created_a_generation_a_newer_holder_removed_backs_off(tmp_path: Path) -> None:
    """A taker paused between its listing and its create: the generation it creates was taken
    and removed meanwhile, and a newer one holds the lease."""
    slow = GatedDriver(str(tmp_path))
    creating = slow.gate("create", lambda path: path.startswith(paths.gc_leases()))
    taking = asyncio.create_task(try_take(slow, "garbage-collect"))
    await first(creating.reached, taking)
    assert not taking.done(), taking
    other = FilesystemDriver(str(tmp_path))
    for _ in range(2):
        await (await try_take(other, "garbage-collect")).release()
    holder = await try_take(other, "garbage-collect")
    assert await lease_cases.generations(other) == [3]
    creating.open()
    with pytest.raises(LeaseBusy):
        await taking
    assert sorted(await lease_cases.generations(other)) == [1, 3]  # it did create 1 again
    assert (await read_state(other)).run == holder.run
    await holder.check()
    await holder.release()


async def test_two_collections_at_once_only_one_sweeps(tmp_path: Path) -> None:
    data = os.urandom(64)
    orphan = Digest("sha256", hashlib.sha256(data).hexdigest())
    await FilesystemDriver(str(tmp_path)).put_content(paths.blob_data(orphan), data)
    holding = GatedDriver(str(tmp_path))
    marking = holding.gate("put", lambda path: "/condemned/" in path)
    run = asyncio.create_task(garbage_collect(holding, Options(grace_period=0.0), lambda line: None))
    await first(marking.reached, run)
    assert not run.done(), run  # holds the lease, about to write its markers

    with pytest.raises(LeaseBusy):
        await garbage_collect(FilesystemDriver(str(tmp_path)), Options(grace_period=0.0), lambda line: None)
    assert (tmp_path / paths.blob_data(orphan).lstrip("/")).is_file()
    marking.open()
    report = await run
    assert orphan in report.removed.blobs
    assert not (tmp_path / paths.blob_data(orphan).lstrip("/")).exists()


async def test_a_finished_run_leaves_no_records_of_runs(tmp_path: Path) -> None:
    data = os.urandom(64)
    orphan = Digest("sha256", hashlib.sha256(data).hexdigest())
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content(paths.blob_data(orphan), data)
    await garbage_collect(driver, Options(grace_period=0.0), lambda line: None)
    gc = tmp_path / paths.GC.lstrip("/")
    assert not (gc / "runs").exists()
    assert sorted(p.name for p in gc.iterdir()) == ["lease", "references", "state"]


async def test_a_renewal_held_up_past_a_takeover_leaves_the_new_holders_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_renewal_held_up_past_a_takeover_leaves_the_new_holders_record(
        FilesystemDriver(str(tmp_path)), FilesystemDriver(str(tmp_path)), monkeypatch
    )


async def test_a_release_held_up_past_a_takeover_leaves_the_new_holders_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_release_held_up_past_a_takeover_leaves_the_new_holders_record(
        FilesystemDriver(str(tmp_path)), FilesystemDriver(str(tmp_path)), monkeypatch
    )


async def test_a_holder_paused_between_reading_and_writing_its_record_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_holder_paused_between_reading_and_writing_its_record_writes_nothing(
        FilesystemDriver(str(tmp_path)), FilesystemDriver(str(tmp_path)), monkeypatch
    )


async def test_a_renewal_that_lands_after_the_expiry_stops_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_renewal_that_lands_after_the_expiry_stops_the_holder(
        FilesystemDriver(str(tmp_path)), monkeypatch
    )


async def test_a_claim_held_up_past_a_takeover_leaves_the_new_holders_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lease_cases.a_claim_held_up_past_a_takeover_leaves_the_new_holders_record(
        FilesystemDriver(str(tmp_path)), FilesystemDriver(str(tmp_path)), monkeypatch
    )
