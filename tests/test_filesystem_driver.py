"""Filesystem driver behaviour beyond the shared conformance suite."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

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


async def test_a_write_cut_off_before_it_lands_leaves_no_empty_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories a small write creates appear together with the object, never before it."""
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repositories/app/_manifests/tags/old/current/link", b"sha256:a")
    real_rename = os.rename

    def dying_rename(source: str, destination: str) -> None:
        if destination.endswith("/tags/new"):
            raise SystemExit("the process dies here")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", dying_rename)
    with pytest.raises(SystemExit):
        await driver.put_content("/repositories/app/_manifests/tags/new/current/link", b"sha256:b")
    monkeypatch.undo()

    assert await driver.list("/repositories/app/_manifests/tags") == ["/repositories/app/_manifests/tags/old"]
    await driver.put_content("/repositories/app/_manifests/tags/new/current/link", b"sha256:b")
    assert await driver.get_content("/repositories/app/_manifests/tags/new/current/link") == b"sha256:b"
