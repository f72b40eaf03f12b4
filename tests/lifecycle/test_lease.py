"""The maintenance lease's holder: once its last renewal is too old for it to be sure of the lease
(pushes may already take its markers as void), it never renews it again, even though nobody took
the lease meanwhile, and it deletes nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.lifecycle import lease as lease_module
from registry.lifecycle.lease import LeaseLost, try_take
from registry.lifecycle.state import read_state
from storage_drivers.filesystem import FilesystemDriver


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
