"""A real small filesystem the tests fill up, free, or make read-only while a registry stores on it.

A loop-mounted ext4 image (no blocks reserved for root: the registry runs as root here), or a
size-limited tmpfs where loop devices are missing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

SIZE_MIB = 96
FILLER = "filler"
RESERVE = "reserve"


def _run(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def small_filesystem(workdir: Path) -> Iterator[Path]:
    mount = workdir / "mnt"
    mount.mkdir()
    image = workdir / "disk.img"
    with open(image, "wb") as file:
        file.truncate(SIZE_MIB << 20)
    looped = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image)) and _run(
        "mount", "-o", "loop", str(image), str(mount)
    )
    if not looped and not _run("mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(mount)):
        raise RuntimeError("neither a loop-mounted ext4 nor a tmpfs could be mounted (run as root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        image.unlink(missing_ok=True)


def _write_until_full(path: Path, block: int) -> None:
    """Append blocks of ``block`` bytes until the filesystem refuses one."""
    data = b"\xa5" * block
    with open(path, "ab", buffering=0) as file:
        while True:
            try:
                file.write(data)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return


def fill(mount: Path, leave: int = 0) -> None:
    """Fill the filesystem, leaving about ``leave`` bytes free."""
    reserve = mount / RESERVE
    if leave:
        reserve.write_bytes(b"\x00" * leave)
        os.sync()
    for block in (1 << 20, 4096, 1):
        _write_until_full(mount / FILLER, block)
    # Small files (and directories) take a block each: make every allocation fail.
    for count in range(1 << 16):
        try:
            (mount / f"{FILLER}-{count}").write_bytes(b"x")
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            break
    os.sync()
    reserve.unlink(missing_ok=True)
    os.sync()


def free(mount: Path) -> None:
    for leftover in mount.glob(f"{FILLER}*"):
        leftover.unlink()
    (mount / RESERVE).unlink(missing_ok=True)
    os.sync()


def remount(mount: Path, read_only: bool) -> None:
    assert _run("mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(mount)), mount
