"""Page-aligned buffers that gather an upload's body into batches, reused within a process.

The body arrives in pieces of a quarter megabyte or less; each batch copies them into one buffer,
which is then hashed in a single call and written in a single call (directly to disk, bypassing
the page cache, by a driver that can). Memory mapped afresh for every batch would be faulted in
page by page, so a few buffers are kept: a chunked push makes one request per chunk, and each
request would otherwise start on cold memory.
"""

from __future__ import annotations

import mmap

ALIGNMENT = mmap.PAGESIZE
"""Batches start on a page boundary in memory and, all but a request's first, at a multiple of
this in the file."""


class BatchBuffers:
    """Buffers of ``size`` bytes; up to ``keep`` given back are kept for the next ``take``.

    A buffer costs memory only for the pages its batches touched. When many uploads arrive at
    once and batches shrink, a kept buffer that once held a larger batch gives up the pages
    beyond the batches it is now taken for.
    """

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self._keep = keep
        self._idle: list[mmap.mmap] = []

    def take(self, batch_size: int) -> mmap.mmap:
        """A buffer for batches of up to ``batch_size`` bytes (a multiple of ALIGNMENT)."""
        if not self._idle:
            return mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE)  # anonymous: private is cheapest
        buffer = self._idle.pop()
        if batch_size < self.size:
            buffer.madvise(mmap.MADV_DONTNEED, batch_size, self.size - batch_size)
        return buffer

    def give_back(self, buffer: mmap.mmap) -> None:
        """Keep ``buffer`` for reuse, or drop it (it is unmapped once nothing refers to it)."""
        if len(self._idle) < self._keep:
            self._idle.append(buffer)
