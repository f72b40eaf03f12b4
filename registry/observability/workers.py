"""Metrics shared by the forked workers: prometheus_client's multiprocess mode.

Each worker writes its samples to memory-mapped files named by its pid in one directory; a
scrape, answered by any worker, sums the files of every worker that ever ran. So a worker that
dies and is replaced keeps its totals (its counter files stay), while its live gauges (requests
in flight) are removed by the next scrape. The directory is created before the workers
are forked, since prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is imported, and
removed when the registry stops. A registry killed outright cannot remove its own: the next one
started with the same temporary directory does. It knows a dead registry's directory by the
lock on its ``lock`` file, which the registry and its workers hold as long as one of them runs
(and the kernel drops when the last dies, whatever killed it); an older version's directory,
which has no lock file, by its files' names: the pids of its processes, none of which runs.

This module imports nothing of prometheus_client: the supervisor stays small.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"
SINCE_ENV = "DOCKYARD_METRICS_SINCE"
"""When the workers' figures started (epoch seconds): a replaced worker counts from there too."""
LIVE_GAUGE_FILES = ("gauge_livesum_{pid}.db", "gauge_liveall_{pid}.db")
"""prometheus_client's files for gauges that describe a living process only."""


PREFIX = "dockyard-metrics-"
LOCK = "lock"
"""Held while the registry runs; prometheus_client reads only the ``.db`` files beside it."""
MAKING_SECONDS = 60.0
"""Past this age a directory without a lock file is not one a registry is making."""


@contextlib.contextmanager
def shared_metrics() -> Iterator[Path]:
    """A fresh directory for the workers' metric files, named to them through the environment."""
    temporary = Path(tempfile.gettempdir())
    _forget_dead_registries(temporary)
    directory, lock = _locked_directory(temporary)
    previous = {name: os.environ.get(name) for name in (DIRECTORY_ENV, SINCE_ENV)}
    os.environ[DIRECTORY_ENV] = str(directory)
    os.environ[SINCE_ENV] = repr(time.time())
    try:
        yield directory
    finally:
        os.close(lock)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that no longer run: what they had in flight is no longer
    in flight. Each scrape calls this first, so a dead worker's never show."""
    for pattern in LIVE_GAUGE_FILES:
        for path in directory.glob(pattern.format(pid="*")):
            pid = path.stem.rpartition("_")[2]
            if pid.isdigit() and not _running(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _locked_directory(temporary: Path) -> tuple[Path, int]:
    """A new directory and its lock, held (the forked workers inherit it: held while one runs)."""
    while True:
        directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=temporary))
        lock = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / LOCK).exists():
            return directory, lock
        # Another registry starting took the lock first, before this one could, and removed it.
        os.close(lock)


def _forget_dead_registries(temporary: Path) -> None:
    """Remove the metric directories of registries killed outright: those whose lock is free,
    and those of older versions, which kept no lock file, once none of their writers runs."""
    for directory in temporary.glob(f"{PREFIX}*"):
        try:
            lock = os.open(directory / LOCK, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            if _abandoned(directory):
                shutil.rmtree(directory, ignore_errors=True)
            continue
        except OSError:  # another user's, or not a directory
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(directory, ignore_errors=True)
        except BlockingIOError:
            pass  # a running registry's
        finally:
            os.close(lock)


def _abandoned(directory: Path) -> bool:
    """Whether a directory without a lock file is an older version's whose processes all ended
    (each names its files by its pid). One a registry is making lacks its lock file for an
    instant: a directory younger than MAKING_SECONDS is left alone, as is another user's."""
    try:
        made = directory.stat()
        writers = {path.stem.rpartition("_")[2] for path in directory.glob("*.db")}
    except OSError:
        return False
    if made.st_uid != os.getuid() or time.time() - made.st_mtime < MAKING_SECONDS:
        return False
    return not any(_running(int(pid)) for pid in writers if pid.isdigit())


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process took the number: not ours, but not ours to judge
    return True
