"""Which pages of a mapping are in memory (``mincore``): for tests of what stays cached."""

from __future__ import annotations

import ctypes
import mmap
import os


def resident_fraction(mapped: mmap.mmap) -> float:
    """The share of ``mapped``'s pages in memory (for a file mapping: in the page cache)."""
    pages = -(-len(mapped) // mmap.PAGESIZE)
    resident = (ctypes.c_ubyte * pages)()
    start = ctypes.c_char.from_buffer(mapped)  # needs a writable mapping (ACCESS_COPY for files)
    status = ctypes.CDLL(None, use_errno=True).mincore(
        ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(len(mapped)), resident
    )
    del start  # the mapping cannot close while a pointer into it exists
    if status != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return sum(page & 1 for page in resident) / pages


def page_advice(mapped: mmap.mmap) -> set[str]:
    """The huge-page advice the kernel holds for ``mapped`` (Linux ``smaps`` flags): ``hg`` for
    huge pages wanted, ``nh`` for never."""
    start = ctypes.c_char.from_buffer(mapped)
    address = ctypes.addressof(start)
    del start
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            head = line.split(maxsplit=1)[0]
            if "-" in head and ":" not in head:
                low, high = (int(bound, 16) for bound in head.split("-"))
                inside = low <= address < high
            elif inside and head == "VmFlags:":
                return set(line.split()[1:]) & {"hg", "nh"}
    raise LookupError("the mapping is not in /proc/self/smaps")
