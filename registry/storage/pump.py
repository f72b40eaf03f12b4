"""The upload data path: a request body written and hashed in large batches off the event loop.

A body is read into page-aligned batches (``Body.fill``: where the connection allows, straight
from the socket, see ``registry/rawbody.py``); each batch is written in one worker-thread call
and hashed by a thread that takes the batches in order, while the next batches arrive. A request
is answered once its bytes are written, while its last batches may still be hashed. The running
hash lives in a small per-process cache: it is only an optimisation (the session logic in
``uploads.py`` hashes the stored data again when the finishing worker did not see every byte).
How the sizes below were chosen is written down in ``bench/README.md`` and ``bench/PUSH.md``.
"""

from __future__ import annotations

import asyncio
import mmap
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from offload import to_bulk_thread
from storage_drivers import FileWriter

from ..references import Hasher
from .batches import ALIGNMENT, BatchBuffers

MIN_BATCH = 512 << 10
MAX_BATCH = 4 << 20
"""Bytes gathered before one write+hash in worker threads. Larger batches cost fewer thread hops
and make larger disk writes. Both are multiples of ALIGNMENT."""
IN_FLIGHT = 2
"""Batches of one upload being written and hashed while the next one fills: with two, the threads
still have work while the event loop is busy elsewhere. Each upload holds one more, filling."""
LINGER = 0.02
"""Seconds a lane's thread waits for the next batch before it ends: batches of a push at full
speed come every few milliseconds, and a slow client's should not hold a thread."""
BUFFERS_KEPT = 2 * IN_FLIGHT + 1
"""Buffers a worker keeps for reuse: a lone chunked push holds this many when a request starts
while the one before it is still being hashed."""
UPLOAD_MEMORY = 12 << 20
"""The batches of all uploads arriving at one worker stay within this where they can (never
below MIN_BATCH each); a lone upload gets MAX_BATCH."""


class Body(Protocol):
    """A request body as the upload path reads it."""

    async def fill(self, view: memoryview) -> int:
        """Copy the body's next bytes into ``view``; fewer than ``len(view)`` only when the body
        ends. Returns the count."""
        ...


class IteratedBody:
    """A ``Body`` read from pieces of any size."""

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")

    async def fill(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            if not self._piece:
                piece = await anext(self._pieces, None)
                if piece is None:
                    break
                self._piece = memoryview(piece)
                continue
            count = min(len(self._piece), len(view) - filled)
            view[filled : filled + count] = self._piece[:count]
            self._piece = self._piece[count:]
            filled += count
        return filled


@dataclass(frozen=True, slots=True)
class RunningHash:
    algorithm: str
    offset: int
    hasher: Hasher
    hashing: asyncio.Future[None] | None = None
    """The hashing of the last request's final batches, which may outlive the request."""

    async def hexdigest(self) -> str:
        if self.hashing is not None:
            await self.hashing
        return self.hasher.hexdigest()


class HasherCache:
    """Running hashes of uploads this process has seen every byte of, by (name, id)."""

    def __init__(self, capacity: int = 256) -> None:
        self._entries: OrderedDict[tuple[str, str], RunningHash] = OrderedDict()
        self._capacity = capacity

    def take(self, key: tuple[str, str], offset: int) -> RunningHash | None:
        """The running hash if it covers exactly ``offset`` bytes; removed from the cache."""
        entry = self._entries.pop(key, None)
        return entry if entry is not None and entry.offset == offset else None

    def put(self, key: tuple[str, str], entry: RunningHash) -> None:
        self._entries[key] = entry
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def drop(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)


class Receiver:
    """Writes request bodies of the uploads arriving at this worker, sharing one memory budget:
    ``memory`` bytes in batches of at least ``smallest``."""

    def __init__(self, memory: int = UPLOAD_MEMORY, smallest: int = MIN_BATCH) -> None:
        self._buffers = BatchBuffers(MAX_BATCH, keep=BUFFERS_KEPT)
        self._receiving = 0
        self._memory, self._smallest = memory, smallest

    async def write(
        self,
        body: Body,
        writer: FileWriter,
        running: RunningHash | None,
        *,
        length: int | None = None,
        final: bool = False,
    ) -> RunningHash | None:
        """Write ``body`` at the end of ``writer``; the running hash, extended, when there is one.
        ``length``, when the request declares it, lets the writer plan its writes (``expect``);
        ``final``: the writer is committed next."""
        if length is not None:
            writer.expect(length, final)
        self._receiving += 1
        try:
            hashing = await pump(body, writer, running, self._batch_size, self._buffers)
        finally:
            self._receiving -= 1
        if running is None:
            return None
        return RunningHash(running.algorithm, writer.size, running.hasher, hashing)

    def _batch_size(self) -> int:
        share = self._memory // ((IN_FLIGHT + 1) * self._receiving)
        return max(self._smallest, min(MAX_BATCH, share - share % ALIGNMENT))


async def pump(
    body: Body,
    writer: FileWriter,
    running: RunningHash | None,
    batch_size: Callable[[], int],
    buffers: BatchBuffers,
) -> asyncio.Future[None] | None:
    """Read ``body`` into batches of ``batch_size()`` bytes (asked anew for each batch) and write
    and hash each in worker threads while the next ones arrive; IN_FLIGHT batches at most wait for
    the threads. The first batch ends at a multiple of ALIGNMENT in the file, so that the others
    start at one.

    Returns once every batch is written, with the hashing of the last ones, which continues
    ``running`` (and its own unfinished hashing): the next request need not wait for it.
    """
    lanes = _Lanes(writer, running, buffers)
    size = batch_size()
    wanted = size - writer.size % ALIGNMENT
    try:
        while True:
            batch = buffers.take(size)
            try:
                filled = await body.fill(memoryview(batch)[:wanted])
            except BaseException:
                buffers.give_back(batch)
                raise
            if filled:
                await lanes.flush(batch, filled)
            else:
                buffers.give_back(batch)
            if filled < wanted:
                return await lanes.written()
            size = wanted = batch_size()
    finally:
        # A write still running in a thread must end before anyone closes the writer.
        await lanes.settle()


class _Lanes:
    """Writes batches in order in one lane and hashes them in order in another. Each lane is a
    worker thread taking the batches one after another (``_ThreadLane``); a writer that can only
    write asynchronously (S3 parts) gets a chain of its calls instead, a batch's call starting
    once the batch before it is written. A batch's buffer goes back once both are done with it."""

    def __init__(self, writer: FileWriter, running: RunningHash | None, buffers: BatchBuffers) -> None:
        self._writer = writer
        self._buffers = buffers
        blocking = writer.blocking_write()
        self._writing = _ThreadLane(blocking, None) if blocking is not None else None
        self._last_write: asyncio.Future[None] | None = None
        hashing = running.hashing if running else None
        self._hashing = _ThreadLane(running.hasher.update, hashing) if running else None
        self._last_hash = hashing
        # Steps of the batches in flight; an earlier request's hashing counts as one of them.
        self._in_flight: deque[list[asyncio.Future[None]]] = deque([[hashing]] if hashing else [])

    async def flush(self, batch: mmap.mmap, length: int) -> None:
        """Start writing and hashing ``batch``, after waiting while IN_FLIGHT batches are."""
        if len(self._in_flight) >= IN_FLIGHT:
            for step in self._in_flight.popleft():
                await step
        data = memoryview(batch)[:length]
        unfinished = 1 if self._hashing is None else 2

        def release() -> None:
            nonlocal unfinished
            unfinished -= 1
            if not unfinished:
                self._buffers.give_back(batch)

        if self._writing is not None:
            self._last_write = self._writing.submit(data, release)
        else:
            self._last_write = asyncio.ensure_future(_after(self._last_write, self._writer.write, data))
            self._last_write.add_done_callback(lambda _: release())
        steps: list[asyncio.Future[None]] = [self._last_write]
        if self._hashing is not None:
            self._last_hash = self._hashing.submit(data, release)
            steps.append(self._last_hash)
        self._in_flight.append(steps)

    async def written(self) -> asyncio.Future[None] | None:
        """Wait until every batch is written (raising the first failure); the hashing left."""
        if self._last_write is not None:
            await self._last_write
        return self._last_hash

    async def settle(self) -> None:
        """No more batches: wait, without raising, until none is being written, even when
        cancelled, which is raised only afterwards (a write into a closed descriptor could land in
        another file). The hashing goes on."""
        if self._hashing is not None:
            self._hashing.close()
        if self._writing is not None:
            self._writing.close()
            last = self._writing.idle()
        else:
            last = self._last_write  # each write starts after the one before it
        if last is None:
            return
        cancelled = False
        while not last.done():
            try:
                await asyncio.wait([last])
            except asyncio.CancelledError:
                cancelled = True
        if not last.cancelled():
            last.exception()  # retrieved: the error that stopped the upload is raised
        if cancelled:
            raise asyncio.CancelledError


class _ThreadLane:
    """Runs ``work`` on batches in order in one worker thread that takes each next batch itself,
    as soon as it is done with the one before: a trip through the event loop between batches
    would leave the hashing (what bounds a push) or the disk waiting whenever the loop is busy
    reading the socket.

    The thread waits up to LINGER for the next batch, and ends when none comes or the lane is
    closed with none queued; a later batch starts another. After a failure every later batch
    fails with the same error, untouched."""

    def __init__(self, work: Callable[[memoryview], object], after: asyncio.Future[None] | None) -> None:
        self._work = work
        self._after = after
        """The work on the last batch of an earlier request of the same upload, which comes first."""
        self._loop = asyncio.get_running_loop()
        self._ready = threading.Condition()
        self._queued: deque[tuple[memoryview, asyncio.Future[None], Callable[[], None]]] = deque()
        self._running = False
        self._closed = False
        self._failure: BaseException | None = None
        self._thread: asyncio.Future[None] | None = None

    def submit(self, data: memoryview, done: Callable[[], None]) -> asyncio.Future[None]:
        """Queue ``data``; the future tells when the work on it is done. ``done`` is called, on
        the event loop, once the thread no longer reads ``data``, whether or not anyone still
        waits."""
        future = self._loop.create_future()
        with self._ready:
            self._queued.append((data, future, done))
            if self._running:
                self._ready.notify()
                return future
            self._running = True
        self._thread = asyncio.ensure_future(self._run())
        return future

    def close(self) -> None:
        """No more batches: the thread ends once the queued ones are done."""
        with self._ready:
            self._closed = True
            self._ready.notify()

    def idle(self) -> asyncio.Future[None] | None:
        """Done once no thread runs the work (after ``close``)."""
        return self._thread

    async def _run(self) -> None:
        if self._after is not None:
            after, self._after = self._after, None
            await asyncio.wait([after])
            if after.cancelled():
                self._failure = asyncio.CancelledError()
            else:
                self._failure = after.exception()
        await to_bulk_thread(self._take_queued)

    def _take_queued(self) -> None:
        """In the worker thread: work on the queued batches until none comes."""
        while True:
            with self._ready:
                if not self._queued and not self._closed:
                    self._ready.wait(LINGER)
                if not self._queued:
                    self._running = False
                    return
                data, future, done = self._queued.popleft()
            if self._failure is None:
                try:
                    self._work(data)
                except BaseException as exc:  # handed to whoever waits for it
                    self._failure = exc
            self._loop.call_soon_threadsafe(_resolve, future, self._failure, done)


def _resolve(future: asyncio.Future[None], failure: BaseException | None, done: Callable[[], None]) -> None:
    done()
    if future.done():  # cancelled by a waiter
        return
    if failure is None:
        future.set_result(None)
    elif isinstance(failure, asyncio.CancelledError):
        future.cancel()  # the earlier request's hashing was cancelled
    else:
        future.set_exception(failure)
        # Every later batch fails with it too, and the pump raises the first it meets: the rest
        # are not waited for, and are not worth a "never retrieved" report each.
        future.exception()


async def _after(
    previous: asyncio.Future[None] | None, step: Callable[..., Awaitable[None]], *args: object
) -> None:
    if previous is not None:
        await previous
    await step(*args)
