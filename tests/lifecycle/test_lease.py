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
    data = os.urandom(64)
    orphan = Digest("sha256", hashlib.sha256(data).hexdigest())
    await FilesystemDriver(str(tmp_path)).put_content(paths.blob_data(orphan), data)
    collector = GatedDriver(str(tmp_path))
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
