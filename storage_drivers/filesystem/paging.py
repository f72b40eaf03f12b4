"""Bringing a mapped file's pages in from a worker thread without holding the interpreter lock.

Python's ``mmap.madvise`` keeps the GIL for the whole system call, so a worker thread bringing a
download's next window in from disk (or only mapping it from the page cache: about 1.7 ms per
8 MiB) held the event loop off for as long. The calls that may wait go to libc's ``madvise``
through ctypes instead, which releases the lock around the foreign call. The mapping's buffer is
held exported meanwhile, so it cannot be closed (unmapped) under the kernel's feet: ``close``
raises BufferError instead.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from collections.abc import Callable

MADV_POPULATE_READ = 22  # Linux 5.14; Python's mmap module does not name it yet


class _Buffer(ctypes.Structure):
    """C's ``Py_buffer`` (part of the stable ABI since Python 3.11)."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    """libc's ``madvise`` where the platform is known to have it; None elsewhere (the mmap
    module's, lock and all, is used there)."""
    if sys.platform != "linux":
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    call.restype = ctypes.c_int
    return call


_MADVISE = _libc_madvise()
# ctypes.pythonapi keeps the lock and raises the Python error a failed call sets.
_GET_BUFFER = ctypes.pythonapi.PyObject_GetBuffer
_GET_BUFFER.argtypes = [ctypes.py_object, ctypes.POINTER(_Buffer), ctypes.c_int]
_GET_BUFFER.restype = ctypes.c_int
_RELEASE_BUFFER = ctypes.pythonapi.PyBuffer_Release
_RELEASE_BUFFER.argtypes = [ctypes.POINTER(_Buffer)]
_RELEASE_BUFFER.restype = None


def advise(mapped: mmap.mmap, advice: int, start: int, length: int) -> None:
    """``madvise(advice)`` over ``length`` bytes of ``mapped`` from ``start`` (a multiple of the
    page size), with the interpreter lock released while the kernel works."""
    if _MADVISE is None:
        mapped.madvise(advice, start, length)
        return
    if not 0 <= start < len(mapped) or length < 0:
        raise ValueError(f"madvise from {start} for {length} bytes in a mapping of {len(mapped)}")
    length = min(length, len(mapped) - start)  # as the mmap module's madvise
    buffer = _Buffer()
    _GET_BUFFER(mapped, ctypes.byref(buffer), 0)  # ValueError once closed
    try:
        if _MADVISE(buffer.buf + start, length, advice) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        _RELEASE_BUFFER(ctypes.byref(buffer))


def populate(mapped: mmap.mmap, start: int, length: int, ahead: int) -> None:
    """Bring ``length`` bytes from ``start`` into the mapping and start reading the ``ahead``
    bytes after them from disk, without waiting: a cold blob's next window then arrives while
    this one is sent, rather than after it (a blob just pushed is cold: uploads are written
    around the page cache). For pages already cached the read-ahead costs a lookup."""
    try:
        advise(mapped, MADV_POPULATE_READ, start, length)
    except OSError:  # an older kernel: ask for read-ahead instead
        advise(mapped, mmap.MADV_WILLNEED, start, length)
    if ahead > 0:
        stop = start + length
        following = stop - stop % mmap.PAGESIZE
        advise(mapped, mmap.MADV_WILLNEED, following, stop - following + ahead)
