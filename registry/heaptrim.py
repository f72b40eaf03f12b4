"""Freed heap given back to the system once a worker falls idle after a burst.

glibc keeps what a process frees: below ``M_TRIM_THRESHOLD`` at the top of each arena's heap
(8 MiB, ``registry/supervisor.py``, so that request bodies' pieces do not cost a ``brk`` each)
and every free page inside the heaps. After a burst of uploads a worker thus kept about 10 MiB
more than when it started, until its next burst. ``malloc_trim(0)`` returns both, so it runs once
a worker has been idle for a whole tick of its server (a second) after requests that grew its
memory: never while requests run, and not again until more requests come.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable

GROWTH = 2 << 20
"""Bytes of resident memory gained since the last trim (or the start) that make a trim worth its
cost: the trim itself and the page faults of the memory used again later."""

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE


def _malloc_trim() -> Callable[[int], int] | None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    return None


class IdleTrim:
    """Told the server's state once a tick, says when to trim; ``trim`` runs in a thread."""

    def __init__(self) -> None:
        self._malloc_trim = _malloc_trim()
        self._requests = 0  # the count seen at the previous tick
        self._checked = 0  # the count when memory was last looked at
        self._baseline = resident_bytes()

    def due(self, requests: int, busy: bool) -> bool:
        """Whether to trim now, given the requests the server has taken so far and whether any
        is running: only in a tick that saw no new request, once per quiet spell."""
        quiet = not busy and requests == self._requests
        self._requests = requests
        if not quiet or requests == self._checked or self._malloc_trim is None:
            return False
        self._checked = requests
        resident = resident_bytes()
        # Memory given back without a trim (upload buffers unmapped after the last one) lowers
        # the mark, so that the next burst's growth is measured from where the worker fell to.
        self._baseline = min(self._baseline, resident)
        return resident - self._baseline >= GROWTH

    def trim(self) -> None:
        if self._malloc_trim is not None:
            self._malloc_trim(0)
        self._baseline = resident_bytes()
