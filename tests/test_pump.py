"""How an upload's body reaches the storage writer: in order, hashed, in bounded aligned batches."""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType

import pytest

from registry.references import Hasher
from registry.storage import pump as pump_module
from registry.storage.batches import ALIGNMENT, BatchBuffers
from registry.storage.pump import IN_FLIGHT, MAX_BATCH, MIN_BATCH, IteratedBody, RunningHash, pump
from storage_drivers import FileWriter
from storage_drivers.inmemory import InMemoryDriver


class RecordingWriter(FileWriter):
    """Passes writes on to ``inner``, slowly, recording each write's offset and length and how
    many writes ran at once."""

    def __init__(self, inner: FileWriter, fail_at: int | None = None) -> None:
        self.inner = inner
        self.writes: list[tuple[int, int]] = []
        self.running = 0
        self.most_running = 0
        self.fail_at = fail_at

    @property
    def size(self) -> int:
        return self.inner.size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.001)  # the next batches fill meanwhile
            if self.fail_at is not None and len(self.writes) == self.fail_at:
                raise OSError("disk full")
            self.writes.append((self.inner.size, len(data)))
            await self.inner.write(bytes(data))  # the buffer is reused once this returns
        finally:
            self.running -= 1

    async def close(self) -> None:
        await self.inner.close()

    async def commit(self) -> None:
        await self.inner.commit()

    async def cancel(self) -> None:
        await self.inner.cancel()


def pieces_of_every_size(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [1, 0, 4095, 4096, 3, 300 << 10, 2 * MAX_BATCH + 11]
    # Mostly tiny pieces (a slow or hostile client), now and then a large one.
    sizes += [rng.choice([1, 17, 90, 4096, 1, 17, 90, 70_000]) for _ in range(60_000)]
    return [rng.randbytes(size) for size in sizes]


def running_sha256() -> RunningHash:
    return RunningHash("sha256", 0, hashlib.sha256())


def stream(pieces: list[bytes]) -> IteratedBody:
    async def each() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return IteratedBody(each())


@pytest.mark.parametrize("already_written", [0, 5])
async def test_pieces_of_every_size_arrive_whole_hashed_and_in_aligned_batches(already_written: int) -> None:
    pieces = pieces_of_every_size(7)
    driver = InMemoryDriver()
    inner = await driver.writer("/upload/data")
    await inner.write(b"x" * already_written)
    writer = RecordingWriter(inner)
    asked: list[int] = []

    def batch_size() -> int:  # as the number of uploads in flight changes
        asked.append(MAX_BATCH if len(asked) % 3 == 0 else MIN_BATCH)
        return asked[-1]

    running = RunningHash("sha256", already_written, hashlib.sha256())
    buffers = BatchBuffers(MAX_BATCH, keep=IN_FLIGHT + 1)
    hashing = await pump(stream(pieces), writer, running, batch_size, buffers)
    await writer.commit()

    whole = b"".join(pieces)
    assert await driver.get_content("/upload/data") == b"x" * already_written + whole
    assert (
        await RunningHash("sha256", 0, running.hasher, hashing).hexdigest()
        == hashlib.sha256(whole).hexdigest()
    )
    offsets = [offset for offset, _ in writer.writes]
    assert offsets == sorted(offsets), "batches were written out of order"
    assert [length for _, length in writer.writes[1:-1]] == asked[1 : len(writer.writes) - 1]
    assert writer.writes[0][1] == asked[0] - already_written
    assert all(offset % ALIGNMENT == 0 for offset in offsets[1:]), "a batch started unaligned"
    assert writer.most_running == 1, "two writes of one upload overlapped"


async def test_batches_wait_while_in_flight_ones_are_written() -> None:
    driver = InMemoryDriver()
    writer = RecordingWriter(await driver.writer("/upload/data"))
    taken = 0
    buffers = BatchBuffers(MIN_BATCH, keep=IN_FLIGHT + 1)
    take = buffers.take

    def counting_take(batch_size: int) -> object:
        nonlocal taken
        taken += 1
        return take(batch_size)

    buffers.take = counting_take  # type: ignore[assignment, method-assign]
    body = [bytes(MIN_BATCH)] * 20
    hashing = await pump(stream(body), writer, running_sha256(), lambda: MIN_BATCH, buffers)
    assert hashing is not None
    await hashing
    assert len(writer.writes) == 20
    # Every buffer was given back and taken again: a lone upload never holds more than the kept ones.
    assert len(buffers._idle) == IN_FLIGHT + 1
    assert taken == 21


async def test_a_failed_write_stops_the_upload_after_every_thread_is_done() -> None:
    driver = InMemoryDriver()
    writer = RecordingWriter(await driver.writer("/upload/data"), fail_at=2)
    body = [bytes(MIN_BATCH)] * 20
    with pytest.raises(OSError, match="disk full"):
        await pump(stream(body), writer, running_sha256(), lambda: MIN_BATCH, BatchBuffers(MIN_BATCH, keep=1))
    assert writer.running == 0, "a write was still running when the pump gave up"
    assert len(writer.writes) == 2


class SlowHasher:
    """sha256 that takes its time, as hashing does while the CPU is busy receiving."""

    def __init__(self) -> None:
        self.inner = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        time.sleep(0.02)
        self.inner.update(data)

    def hexdigest(self) -> str:
        return self.inner.hexdigest()

    def copy(self) -> Hasher:
        raise NotImplementedError


async def test_hashing_outlives_the_request_and_the_next_one_continues_it() -> None:
    driver = InMemoryDriver()
    first, second = [bytes([1]) * MIN_BATCH] * 4, [bytes([2]) * MIN_BATCH] * 4
    hasher = SlowHasher()
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    writer = await driver.writer("/upload/data")
    hashing = await pump(stream(first), writer, RunningHash("sha256", 0, hasher), lambda: MIN_BATCH, buffers)
    assert hashing is not None
    assert not hashing.done(), "the request waited for its hashing"
    await writer.close()
    writer = await driver.writer("/upload/data", append=True)
    running = RunningHash("sha256", writer.size, hasher, hashing)
    hashing = await pump(stream(second), writer, running, lambda: MIN_BATCH, buffers)
    await writer.commit()
    digest = await RunningHash("sha256", 0, hasher, hashing).hexdigest()
    assert digest == hashlib.sha256(b"".join(first + second)).hexdigest()


class CountingHasher:
    """sha256 that takes its time and counts, in the hashing thread, the batches it finished;
    it can fail at a given batch, and tells whether a batch's memory changed while it hashed."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.inner = hashlib.sha256()
        self.finished = 0
        self.changed_while_hashed = False
        self.fail_at = fail_at

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        if self.finished == self.fail_at:
            raise ValueError("hashing failed")
        before = bytes(data)
        time.sleep(0.02)
        self.changed_while_hashed |= bytes(data) != before
        self.inner.update(before)
        self.finished += 1

    def hexdigest(self) -> str:
        return self.inner.hexdigest()

    def copy(self) -> Hasher:
        raise NotImplementedError


def numbered_batches(count: int) -> list[bytes]:
    return [bytes([number + 1]) * MIN_BATCH for number in range(count)]


async def test_hashing_goes_on_while_the_event_loop_is_busy() -> None:
    hasher = CountingHasher()
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    writer = await InMemoryDriver().writer("/upload/data")
    body = numbered_batches(IN_FLIGHT + 1)
    hashing = await pump(stream(body), writer, RunningHash("sha256", 0, hasher), lambda: MIN_BATCH, buffers)
    assert hashing is not None
    queued = len(body) - hasher.finished
    assert queued > 1, "nothing left to hash once the request was done"
    # The event loop is busy (this loop never yields to it): it can start no thread call
    # meanwhile. Bounded generously for a loaded machine; hashing that needs the loop never ends.
    deadline = time.monotonic() + 60
    while hasher.finished < len(body) and time.monotonic() < deadline:
        time.sleep(0.01)  # noqa: ASYNC251
    assert hasher.finished == len(body), "the hashing waited for the event loop between batches"
    await hashing
    assert hasher.hexdigest() == hashlib.sha256(b"".join(body)).hexdigest()


async def test_a_failed_hashing_fails_the_upload_and_hashes_nothing_after_it() -> None:
    hasher = CountingHasher(fail_at=2)
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    writer = await InMemoryDriver().writer("/upload/data")
    body = numbered_batches(10)

    async def receive_and_hash() -> None:
        hashing = await pump(
            stream(body), writer, RunningHash("sha256", 0, hasher), lambda: MIN_BATCH, buffers
        )
        if hashing is not None:
            await hashing

    with pytest.raises(ValueError, match="hashing failed"):
        await receive_and_hash()
    await asyncio.sleep(0.1)
    assert hasher.finished == 2, "a batch was hashed after a failed one"


async def test_a_buffer_goes_back_only_once_its_hashing_is_done_even_when_nobody_waits() -> None:
    hasher = CountingHasher()
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    writer = await InMemoryDriver().writer("/upload/data")
    body = numbered_batches(IN_FLIGHT + 1)
    running = RunningHash("sha256", 0, hasher)
    hashing = await pump(stream(body), writer, running, lambda: MIN_BATCH, buffers)
    assert hashing is not None
    assert hasher.finished < len(body) - 1, "the request waited for its hashing"
    # The finishing request goes away while the last batches are being hashed.
    finishing = asyncio.ensure_future(RunningHash("sha256", 0, hasher, hashing).hexdigest())
    await asyncio.sleep(0)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    # Whatever was given back may be reused at once: the next upload fills it.
    while buffers._idle:
        buffers.take(MIN_BATCH)[:] = bytes(MIN_BATCH)
    await asyncio.sleep(0.05 * len(body))
    assert hasher.finished == len(body)
    reused = hasher.changed_while_hashed or hasher.hexdigest() != hashlib.sha256(b"".join(body)).hexdigest()
    assert not reused, "a buffer was reused before its batch was hashed"


class ThreadWriter(FileWriter):
    """Keeps what it is given; offers blocking writes that take their time and record, in the
    writing thread, when each one finished. One can fail."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.content = bytearray()
        self.finished: list[float] = []
        self.threads: set[int] = set()
        self.running = 0
        self.fail_at = fail_at

    @property
    def size(self) -> int:
        return len(self.content)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        raise AssertionError("a writer with blocking writes was written from the event loop")

    def blocking_write(self) -> Callable[[memoryview], None]:
        return self._write

    def _write(self, data: memoryview) -> None:
        self.running += 1
        try:
            self.threads.add(threading.get_ident())
            time.sleep(0.05)  # longer than the network takes between two batches
            if len(self.finished) == self.fail_at:
                raise OSError("disk full")
            self.content += data
            self.finished.append(time.monotonic())
        finally:
            self.running -= 1

    async def close(self) -> None:
        pass

    async def commit(self) -> None:
        pass

    async def cancel(self) -> None:
        pass


class LoopBlockingBody:
    """Batches of a body; while the pump fills the one numbered ``block_at``, the event loop is
    busy (as it is reading a socket) for ``seconds``; when that ended is recorded."""

    def __init__(self, batches: list[bytes], block_at: int, seconds: float) -> None:
        self._inner = IteratedBody(self._each(batches))
        self._block_at = block_at
        self._seconds = seconds
        self.blocked_until = 0.0

    async def _each(self, batches: list[bytes]) -> AsyncIterator[bytes]:
        for number, batch in enumerate(batches):
            await asyncio.sleep(0.01)  # the network: the event loop runs between batches
            if number == self._block_at:
                time.sleep(self._seconds)  # noqa: ASYNC251
                self.blocked_until = time.monotonic()
            yield batch

    async def fill(self, view: memoryview) -> int:
        return await self._inner.fill(view)


async def test_writes_go_on_while_the_event_loop_is_busy() -> None:
    writer = ThreadWriter()
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    batches = numbered_batches(IN_FLIGHT + 2)
    body = LoopBlockingBody(batches, block_at=IN_FLIGHT, seconds=0.2 + 0.05 * IN_FLIGHT)
    hashing = await pump(body, writer, running_sha256(), lambda: MIN_BATCH, buffers)
    assert hashing is not None
    await hashing
    assert writer.content == b"".join(batches)
    assert threading.get_ident() not in writer.threads
    assert max(writer.finished[:IN_FLIGHT]) < body.blocked_until, (
        "the writes waited for the event loop between batches"
    )


async def test_a_failed_blocking_write_stops_the_upload_and_writes_nothing_after_it() -> None:
    writer = ThreadWriter(fail_at=2)
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    with pytest.raises(OSError, match="disk full"):
        await pump(stream(numbered_batches(10)), writer, running_sha256(), lambda: MIN_BATCH, buffers)
    assert writer.running == 0, "a write was still running when the pump gave up"
    await asyncio.sleep(0.1)
    assert len(writer.finished) == 2, "a batch was written after a failed one"
    assert writer.content == b"".join(numbered_batches(2))


async def test_a_finished_request_holds_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lanes' threads wait for more batches only while the request may bring them."""
    monkeypatch.setattr(pump_module, "LINGER", 60.0)
    writer = ThreadWriter()
    buffers = BatchBuffers(MIN_BATCH, keep=2 * IN_FLIGHT + 1)
    hashing = await pump(stream(numbered_batches(5)), writer, running_sha256(), lambda: MIN_BATCH, buffers)
    assert hashing is not None
    await hashing
    for _ in range(600):  # 30 s at most, on a loaded machine; LINGER (60 s here) outlasts it
        if not lanes_waiting():
            break
        await asyncio.sleep(0.05)
    assert lanes_waiting() == 0, "a lane's thread still waits for batches"


async def test_a_receiver_shares_its_budget_among_the_uploads_it_receives() -> None:
    """Four uploads at once on a Receiver of 3 MiB in batches of at least 64 KiB (a driver's
    ``upload_memory``): once all four are receiving, each batch is a quarter of a third of the
    budget (three batches per upload), 256 KiB; the content arrives whole."""
    receiver = pump_module.Receiver(3 << 20, 64 << 10)
    everyone_started = asyncio.Event()
    entered = 0

    async def each(data: bytes) -> AsyncIterator[bytes]:
        nonlocal entered
        entered += 1
        if entered == 4:
            everyone_started.set()
        await everyone_started.wait()
        for start in range(0, len(data), 64 << 10):
            yield data[start : start + (64 << 10)]

    driver = InMemoryDriver()
    bodies = [random.Random(seed).randbytes(3 << 20) for seed in range(4)]
    writers = [RecordingWriter(await driver.writer(f"/budget/{n}")) for n in range(4)]
    await asyncio.gather(
        *(
            receiver.write(IteratedBody(each(body)), writer, None)
            for body, writer in zip(bodies, writers, strict=True)
        )
    )
    for body, writer in zip(bodies, writers, strict=True):
        lengths = [length for _, length in writer.writes]
        assert sum(lengths) == len(body)
        assert max(lengths[1:-1]) == 256 << 10, lengths  # the first batch was sized before the others came
        await writer.commit()
    for n, body in enumerate(bodies):
        assert await driver.get_content(f"/budget/{n}") == body


def lanes_waiting() -> int:
    """Threads in a lane's loop: the thread hop keeps no count of its own."""
    count = 0
    for frame in sys._current_frames().values():
        stack: FrameType | None = frame
        while stack is not None and stack.f_code.co_name != "_take_queued":
            stack = stack.f_back
        count += stack is not None
    return count
