"""Bringing a blob's pages in for a download (``storage_drivers/filesystem/paging.py``): the
pages end up mapped, and the worker thread that waits for them leaves the interpreter to the
event loop's thread meanwhile."""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

import pytest

from storage_drivers.filesystem import populate
from storage_drivers.filesystem.paging import advise
from tests.support.residency import resident_fraction

SIZE = 256 << 20
"""Long enough to read from disk that another thread is seen running during the call."""


def cold_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes, on disk and out of the page cache."""
    block = os.urandom(1 << 20)
    with path.open("wb") as file:
        for _ in range(size // len(block)):
            file.write(block)
        file.flush()
        os.fsync(file.fileno())  # dirty pages would stay cached
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def mapped_resident(path: Path) -> int:
    """Bytes of the process's mappings of ``path`` in its memory (``Rss`` in ``smaps``)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and ":" not in fields[0]:
                inside = len(fields) >= 6 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) << 10
    return total


def cached(path: Path, offset: int, length: int) -> float:
    """The share of ``length`` bytes of ``path`` from ``offset`` in the page cache."""
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), length, access=mmap.ACCESS_COPY, offset=offset)
    with mapped:
        return resident_fraction(mapped)


def test_populate_brings_a_cold_window_into_the_mapping_and_no_more(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    window = 8 << 20
    cold_file(path, 4 * window)
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
    assert cached(path, 0, 4 * window) < 0.1
    assert mapped_resident(path) == 0

    populate(mapped, 0, window, window)  # this window, and a read-ahead of the next

    assert mapped_resident(path) == window  # the window is mapped in, the next only read
    assert cached(path, 0, window) == 1.0
    assert cached(path, 2 * window, 2 * window) < 0.5  # nothing is read beyond what was asked for
    mapped.close()


def test_other_threads_run_python_while_populate_waits_for_the_disk(tmp_path: Path) -> None:
    """The kernel shows the populating thread inside one ``madvise`` call at two moments
    between which this thread ran Python code: the call did not hold the interpreter lock."""
    path = tmp_path / "blob"
    cold_file(path, SIZE)
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
    started = threading.Event()
    native_id: list[int] = []

    def bring_in() -> None:
        native_id.append(threading.get_native_id())
        started.wait()
        populate(mapped, 0, SIZE, 0)

    thread = threading.Thread(target=bring_in)
    thread.start()
    while not native_id:
        pass
    state = Path(f"/proc/self/task/{native_id[0]}/syscall")
    # The arguments /proc shows: the length and advice of this call (MADV_POPULATE_READ or, on
    # an older kernel, MADV_WILLNEED).
    advice = {hex(22), hex(mmap.MADV_WILLNEED)}
    seen: list[str] = []
    started.set()
    while thread.is_alive():
        try:
            fields = state.read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            break  # the thread has ended
        if len(fields) > 3 and fields[2] == hex(SIZE) and fields[3] in advice:
            seen.append(" ".join(fields[:4]))
    thread.join()
    mapped.close()

    assert len(seen) >= 2, seen
    assert len(set(seen)) == 1, seen  # one call, seen again after this thread ran
    assert cached(path, 0, SIZE) == 1.0
    path.unlink()  # pytest keeps the last runs' directories: not 256 MiB of them


def test_advice_outside_a_mapping_or_on_a_closed_one_never_reaches_the_kernel() -> None:
    mapped = mmap.mmap(-1, 1 << 20)
    advise(mapped, mmap.MADV_WILLNEED, 0, 2 << 20)  # the length is cut to the mapping, as mmap's
    with pytest.raises(ValueError, match="in a mapping of"):
        advise(mapped, mmap.MADV_WILLNEED, 1 << 20, mmap.PAGESIZE)
    with pytest.raises(ValueError, match="in a mapping of"):
        advise(mapped, mmap.MADV_WILLNEED, -mmap.PAGESIZE, mmap.PAGESIZE)
    mapped.close()
    with pytest.raises(ValueError, match="closed"):
        advise(mapped, mmap.MADV_WILLNEED, 0, mmap.PAGESIZE)
