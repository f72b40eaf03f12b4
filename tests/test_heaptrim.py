"""When a worker gives freed memory back (``registry/heaptrim.py``): in the first tick of a quiet
spell after requests that grew its memory, once, and never while requests run."""

from __future__ import annotations

import mmap

from registry import heaptrim
from registry.heaptrim import GROWTH, IdleTrim


def test_trims_once_in_a_quiet_tick_after_requests_that_grew_memory() -> None:
    trim = IdleTrim()
    # A mapping of its own: a block from malloc may reuse heap already resident (after earlier
    # large frees in this process glibc serves blocks of this size from the heap).
    held = mmap.mmap(-1, 2 * GROWTH)
    held[:: heaptrim.PAGE] = b"x" * len(held[:: heaptrim.PAGE])  # resident once written
    assert not trim.due(requests=5, busy=False)  # requests came in this tick
    assert not trim.due(requests=5, busy=True)  # one is still running
    assert trim.due(requests=5, busy=False)  # a whole tick without a new one
    trim.trim()
    assert not trim.due(requests=5, busy=False)  # the same quiet spell: not again
    held.close()


def test_no_trim_without_growth_or_without_requests() -> None:
    trim = IdleTrim()
    assert not trim.due(requests=0, busy=False)
    assert not trim.due(requests=0, busy=False)  # idle since the start: nothing to give back
    assert not trim.due(requests=3, busy=False)
    assert not trim.due(requests=3, busy=False)  # quiet after requests, but memory did not grow


def test_a_trim_gives_freed_heap_back() -> None:
    trim = IdleTrim()
    # Blocks under the mmap threshold come from the heap; one still in use above them keeps glibc
    # from returning the top of the heap when they are freed, as a live request's buffers do.
    blocks = [bytearray(64 << 10) for _ in range(4 * GROWTH // (64 << 10))]
    pinned = bytearray(64 << 10)
    for block in blocks:
        block[:: heaptrim.PAGE] = b"x" * len(block[:: heaptrim.PAGE])
    grown = heaptrim.resident_bytes()
    del blocks
    assert heaptrim.resident_bytes() > grown - GROWTH  # freed, but kept
    trim.trim()
    assert heaptrim.resident_bytes() <= grown - GROWTH
    del pinned
