"""Upload batch buffers: reused, and holding memory only for what their last batch used."""

from __future__ import annotations

import asyncio
import mmap
import time
import weakref

from registry.storage.batches import ALIGNMENT, BatchBuffers
from tests.support.residency import page_advice, resident_fraction
from tests.support.waiting import until_awaited

SIZE = 4 << 20


def resident_bytes(buffer: mmap.mmap) -> int:
    return round(resident_fraction(buffer) * len(buffer))


def test_a_kept_buffer_is_reused_and_shrinks_to_smaller_batches() -> None:
    buffers = BatchBuffers(SIZE, keep=1)
    buffer = buffers.take(SIZE)
    buffer[:] = b"\1" * SIZE
    buffers.give_back(buffer)
    assert buffers.take(SIZE) is buffer
    assert resident_bytes(buffer) == SIZE, "a buffer taken for full batches gave up pages"
    assert buffer[:] == b"\1" * SIZE

    buffers.give_back(buffer)
    assert buffers.take(4 * ALIGNMENT) is buffer  # many uploads now: small batches
    assert resident_bytes(buffer) == 4 * ALIGNMENT
    assert buffer[: 4 * ALIGNMENT] == b"\1" * 4 * ALIGNMENT


def test_full_batches_ask_for_huge_pages_and_smaller_ones_never() -> None:
    """A lone upload's batches fill their buffers: two huge pages instead of 1,024 small ones to
    fault in, pin for the direct write and look up. A buffer taken for a smaller batch must not
    hold a huge page its batch does not fill, then or later."""
    buffers = BatchBuffers(SIZE, keep=2)
    full, small = buffers.take(SIZE), buffers.take(SIZE // 8)
    assert page_advice(full) == {"hg"}
    assert page_advice(small) == {"nh"}
    buffers.give_back(full)
    assert buffers.take(SIZE // 8) is full
    assert page_advice(full) == {"nh"}
    buffers.give_back(full)
    assert buffers.take(SIZE) is full
    assert page_advice(full) == {"nh"}, "a buffer once shrunk may be filled again, not grown"


def test_buffers_beyond_the_kept_ones_are_dropped() -> None:
    buffers = BatchBuffers(SIZE, keep=2)
    taken = [buffers.take(SIZE) for _ in range(3)]
    assert len({id(buffer) for buffer in taken}) == 3
    for buffer in taken:
        buffers.give_back(buffer)
    again = [buffers.take(SIZE) for _ in range(3)]
    assert sum(any(buffer is old for old in taken) for buffer in again) == 2


async def test_kept_buffers_are_dropped_once_uploads_stop() -> None:
    """A worker that has stopped receiving uploads gives their memory back; one still receiving
    keeps reusing its buffers."""
    release_after = 2.0  # uses come 0.01 s apart: a loaded machine's pauses do not reach this
    buffers = BatchBuffers(SIZE, keep=2, release_after=release_after)
    buffer = buffers.take(SIZE)
    buffer[:] = b"\1" * SIZE
    buffers.give_back(buffer)
    kept = weakref.ref(buffer)
    del buffer  # dropped by ``buffers``: nothing else refers to it
    busy_until = time.monotonic() + release_after * 1.25
    while time.monotonic() < busy_until:  # busy for longer than release_after, never idle that long
        await asyncio.sleep(0.01)
        taken = buffers.take(SIZE)
        assert taken is kept(), "a buffer in use was dropped"
        buffers.give_back(taken)
        del taken
    await until_awaited(lambda: kept() is None, what="for the idle buffer to be dropped")
