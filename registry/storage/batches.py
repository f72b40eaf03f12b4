"""Page-aligned buffers that gather an upload's body into batches, reused within a process.

The body arrives in pieces of a quarter megabyte or less; each batch copies them into one buffer,
which is then hashed in a single call and written in a single call (directly to disk, bypassing
the page cache, by a driver that can). Memory mapped afresh for every batch would be faulted in
page by page, so a few buffers are kept: a chunked push makes one request per chunk, and each
request would otherwise start on cold memory. Buffers left idle for ``RELEASE_AFTER`` are
dropped: a worker that has stopped receiving uploads does not hold their memory while it serves
everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import time

ALIGNMENT = mmap.PAGESIZE
"""Batches start on a page boundary in memory and, all but a request's first, at a multiple of
this in the file."""
RELEASE_AFTER = 1.0
"""Seconds of no upload activity after which the kept buffers are dropped: a chunked push's next
request (or a docker push's next layer) comes sooner and finds them warm."""


class BatchBuffers:
    """Buffers of ``size`` bytes; up to ``keep`` given back are kept for the next ``take``.

    A buffer costs memory only for the pages its batches touched. When many uploads arrive at
    once and batches shrink, a kept buffer that once held a larger batch gives up the pages
    beyond the batches it is now taken for.
    """

    def __init__(self, size: int, keep: int, release_after: float = RELEASE_AFTER) -> None:
        self.size = size
        self._keep = keep
        self._idle: list[mmap.mmap] = []
        self._release_after = release_after
        self._used_at = 0.0
        self._release: asyncio.TimerHandle | None = None

    def take(self, batch_size: int) -> mmap.mmap:
        """A buffer for batches of up to ``batch_size`` bytes (a multiple of ALIGNMENT)."""
        self._used_at = time.monotonic()
        if not self._idle:
            return _mapped(self.size, huge=batch_size == self.size)
        buffer = self._idle.pop()
        if batch_size < self.size:
            _advise(buffer, "MADV_NOHUGEPAGE")  # for good: a huge page would hold more than asked
            buffer.madvise(mmap.MADV_DONTNEED, batch_size, self.size - batch_size)
        return buffer

    def give_back(self, buffer: mmap.mmap) -> None:
        """Keep ``buffer`` for reuse, or drop it (it is unmapped once nothing refers to it)."""
        self._used_at = time.monotonic()
        if len(self._idle) < self._keep:
            self._idle.append(buffer)
            if self._release is None:
                self._release_later(self._release_after)

    def _release_later(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # used outside an event loop: kept until taken
        self._release = loop.call_later(delay, self._release_if_idle)

    def _release_if_idle(self) -> None:
        self._release = None
        idle_for = time.monotonic() - self._used_at
        if idle_for < self._release_after:
            self._release_later(self._release_after - idle_for)
        else:
            self._idle.clear()


def _mapped(size: int, huge: bool) -> mmap.mmap:
    """Anonymous memory (private is cheapest). ``huge``, for batches as large as the buffer: in
    huge pages where the kernel has them, so that a 4 MiB batch is two pages instead of 1,024 to
    fault in, for the disk's direct write to pin, and for the socket's copy and the hashing to
    look up (``bench/PUSH.md``). Smaller batches keep small pages, which they fill."""
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    _advise(buffer, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE")
    return buffer


def _advise(buffer: mmap.mmap, advice: str) -> None:
    if hasattr(mmap, advice):
        with contextlib.suppress(OSError):  # a kernel built without huge pages
            buffer.madvise(getattr(mmap, advice))
