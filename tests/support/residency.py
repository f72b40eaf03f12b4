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
