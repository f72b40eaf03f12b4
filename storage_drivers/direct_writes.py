"""Large appends written around the page cache (Linux ``O_DIRECT``).

A buffered write copies every byte into the page cache and leaves the kernel to write it back
later. For uploads of gigabytes that copy costs about two thirds as much CPU as hashing them, and
the writeback reaches the disk more slowly than direct writes do (on the benchmark machine 0.6 to
0.9 GB/s against 1.1 to 1.7 GB/s).
A direct write needs its file offset, length and memory aligned to the disk's blocks: large
page-aligned buffers written at aligned offsets go directly, everything else (and everything on a
filesystem that refuses direct writes) through the page cache as usual.
"""

from __future__ import annotations

import ctypes
import errno
import os

BLOCK = 4096
"""Alignment of direct writes: the largest logical block size of common disks, and the page size."""
DIRECT_MIN = 256 << 10
"""Smaller writes go through the page cache: small blobs gain nothing from writing directly."""


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _aligned(data: memoryview) -> bool:
    """Whether ``data`` starts on a block boundary in memory (only writable buffers can tell)."""
    if data.readonly or not data.c_contiguous:
        return False
    return ctypes.addressof(ctypes.c_char.from_buffer(data)) % BLOCK == 0


class DirectAppender:
    """Appends to the file open as ``fd``, directly through a second descriptor of ``path`` where
    offset, length and memory allow. Every write names its offset: the descriptors do not share
    a file position."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path
        self._direct_fd: int | None = None
        self._refused = not hasattr(os, "O_DIRECT")

    def append(self, data: memoryview, offset: int) -> None:
        """Append ``data``; ``offset`` is the file's current size."""
        direct = len(data) - len(data) % BLOCK
        if direct >= DIRECT_MIN and offset % BLOCK == 0 and _aligned(data):
            written = self._write_direct(data[:direct], offset)
            data, offset = data[written:], offset + written
        _write_all(self._fd, data, offset)

    def _write_direct(self, data: memoryview, offset: int) -> int:
        """Bytes of ``data`` written directly at ``offset``: all, some (a full disk), or none
        where the filesystem refuses."""
        if self._refused:
            return 0
        if self._direct_fd is None:
            try:
                self._direct_fd = os.open(self._path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._refused = True
                return 0
        try:
            return os.pwrite(self._direct_fd, data, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._refused = True  # an alignment this filesystem does not accept
            self.close()
            return 0

    def close(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
