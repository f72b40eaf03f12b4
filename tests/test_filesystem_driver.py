"""Filesystem driver behaviour beyond the shared conformance suite."""

from __future__ import annotations

import os
import time
from pathlib import Path

from storage_drivers.filesystem import TEMP_PREFIX, FilesystemDriver


async def test_purge_incomplete_removes_only_old_leftovers_of_crashed_writers(tmp_path: Path) -> None:
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repositories/app/link", b"sha256:x")
    writer = await driver.writer("/repositories/app/_uploads/u/data")
    await writer.write(b"partial")
    await writer.close()  # an upload in progress: its pending file must survive a young purge
    old = time.time() - 3600
    staged = tmp_path / f"{TEMP_PREFIX}crashed.tmp"
    staged.write_bytes(b"half a link")
    half_deleted = tmp_path / "repositories" / "app" / f"{TEMP_PREFIX}doomed.tmp"
    (half_deleted / "current").mkdir(parents=True)
    (half_deleted / "current" / "link").write_bytes(b"sha256:y")
    for leftover in (staged, half_deleted):
        os.utime(leftover, (old, old))

    removed = await driver.purge_incomplete("/repositories", 600)

    assert removed == 2
    assert not staged.exists()
    assert not half_deleted.exists()
    assert await driver.get_content("/repositories/app/link") == b"sha256:x"
    reopened = await driver.writer("/repositories/app/_uploads/u/data", append=True)
    assert reopened.size == len(b"partial")
    await reopened.cancel()
