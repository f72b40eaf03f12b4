"""The leader's download loop (``fetches.py`` decides who leads and how the others follow): the
upstream's bytes are received into page-aligned batches, each hashed, written to the fetch's data
and, where the driver cannot read unfinished data, published as a segment, in lanes of their own;
every batch but the last also goes, from memory, to the client of the request that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from offload import to_thread
from storage_drivers import FileWriter, StorageDriver

from ..references import Digest, FetchId, new_hasher
from ..storage import paths
from ..storage.batches import ALIGNMENT
from .upstream import BlobDownload

BATCH = 4 << 20
"""Bytes per write of the data (and per segment, where there are segments)."""
READ_AHEAD = 2
"""Batches received from the upstream while earlier ones are hashed, written and published."""
IN_FLIGHT = 2
"""Batches being hashed, written and published at once."""
LOCAL_BACKLOG = 16 << 20
"""Bytes a client of the leader's worker may fall behind before it follows as the others do."""


class FetchFailed(Exception):
    """The download a client was being served from ended without the whole, verified blob."""


class Batch:
    """Page-aligned memory the upstream's bytes are received into, returned to its pool for the
    next batch once everything that holds it (the hash, the write, the segment, the client)
    has let go of it: allocating, and zeroing, fresh memory for every batch costs CPU."""

    __slots__ = ("_free", "_holders", "_memory", "view")

    def __init__(self, free: list[memoryview]) -> None:
        self._free = free
        self._memory = free.pop() if free else _aligned(BATCH)
        self.view = self._memory
        """The bytes received (all of the memory but at the blob's end)."""
        self._holders = 0

    async def receive(self, download: BlobDownload, length: int) -> int:
        received = await download.read_into(self._memory[:length])
        self.view = self._memory[:received]
        return received

    def hold(self) -> None:
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self._free.append(self._memory)

    def hold_until(self, done: asyncio.Future[Any]) -> None:
        self.hold()
        done.add_done_callback(lambda _: self.release())


class LocalFeed:
    """The batches of a download for the client of the request that started it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Batch | BaseException | None] = asyncio.Queue()
        self.queued = 0
        self.detached = False
        self.size: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def put(self, batch: Batch) -> None:
        if self.detached:
            return
        if self.queued + len(batch.view) > LOCAL_BACKLOG:
            self.detached = True
            self.queue.put_nowait(None)  # read the rest from the segments
            return
        batch.hold()
        self.queued += len(batch.view)
        self.queue.put_nowait(batch)

    def fail(self, error: BaseException) -> None:
        if not self.size.done():
            self.size.set_exception(error)
        elif not self.detached:
            self.queue.put_nowait(error)


async def transfer(
    driver: StorageDriver,
    found: BlobDownload,
    digest: Digest,
    fetch: FetchId,
    *,
    writer: FileWriter,
    feed: LocalFeed,
) -> Batch | None:
    """Hash and store every batch, and pass all but the last to the leader's client (and the
    segments): the last is returned, held, once the whole blob checks out and is committed,
    for the client when it is in the cache.

    Hashing, writing and segments each run in a lane of their own, in order, while the next
    batches arrive; at most IN_FLIGHT batches wait for the lanes (the disk takes its time, as in
    ``storage/pump.py``).
    """
    hasher = new_hasher(digest.algorithm)
    hashing, writing, publishing = _Lane(), _Lane(), _Lane()
    in_flight: deque[list[asyncio.Future[None]]] = deque()
    held: Batch | None = None
    offset = 0
    try:
        async for batch in _received(found, READ_AHEAD):
            if len(in_flight) >= IN_FLIGHT:
                await asyncio.gather(*in_flight.popleft())
            view = batch.view
            steps = [
                hashing.then(partial(to_thread, hasher.update, view)),
                writing.then(partial(writer.write, view)),
            ]
            if offset < last_batch_start(found.size):
                feed.put(batch)
                if not driver.unfinished_reads:
                    steps.append(publishing.then(partial(_publish, driver, digest, fetch, offset, view)))
            else:
                held = batch
                held.hold()
            batch.hold_until(asyncio.gather(*steps, return_exceptions=True))
            in_flight.append(steps)
            offset += len(view)
        for steps in in_flight:
            await asyncio.gather(*steps)
    finally:
        # Nothing may still write when the caller closes the writer, even after a failure.
        await asyncio.gather(*(step for steps in in_flight for step in steps), return_exceptions=True)
    if offset != found.size:
        raise FetchFailed(f"the upstream sent {offset} of the {found.size} bytes it announced")
    if hasher.hexdigest() != digest.hex:
        raise FetchFailed(f"the upstream's content does not match {digest}")
    await writer.commit()
    return held


async def _publish(
    driver: StorageDriver, digest: Digest, fetch: FetchId, offset: int, batch: memoryview
) -> None:
    """A batch for followers where the driver cannot read the data before it is committed."""
    await driver.put_content(paths.blob_fetch_segment(digest, fetch, offset), bytes(batch))


def last_batch_start(size: int) -> int:
    """Where the last batch of a blob of ``size`` bytes begins: followers never read from there
    before the blob is in the cache."""
    return max(size - 1, 0) // BATCH * BATCH


class _Lane:
    """Steps that run one after another, in the order given, each once the one before it ended."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def then(self, step: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        previous = self._last

        async def run() -> None:
            if previous is not None:
                await previous
            await step()

        self._last = asyncio.ensure_future(run())
        return self._last


def _aligned(size: int) -> memoryview:
    """``size`` writable bytes starting on a page boundary (zeroed: the cost of a new one)."""
    memory = bytearray(size + ALIGNMENT)
    start = -ctypes.addressof(ctypes.c_char.from_buffer(memory)) % ALIGNMENT
    return memoryview(memory)[start : start + size]


async def _received(found: BlobDownload, depth: int) -> AsyncIterator[Batch]:
    """The download in batches of BATCH bytes (the last one shorter), received straight into
    page-aligned memory (the filesystem driver writes such batches directly to disk: see
    ``storage_drivers/direct_writes.py``) by a task of its own, up to ``depth`` batches ahead of
    the consumer, so that the upstream keeps sending while the consumer writes. The stream ends
    early when the upstream did."""
    queue: asyncio.Queue[Batch | BaseException | None] = asyncio.Queue(depth)
    free: list[memoryview] = []

    async def receive() -> None:
        offset = 0
        try:
            while offset < found.size:
                batch = Batch(free)
                wanted = min(BATCH, found.size - offset)
                received = await batch.receive(found, wanted)
                if received:
                    await queue.put(batch)
                if received < wanted:
                    break
                offset += received
        except Exception as exc:
            await queue.put(exc)
            return
        await queue.put(None)

    receiving = asyncio.create_task(receive())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
