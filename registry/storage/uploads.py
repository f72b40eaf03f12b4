"""Blob upload sessions, kept in storage so any worker (or a restarted server) continues any upload.

An upload exists while its ``startedat`` file does. Bytes are appended to its
``data`` file; finishing commits them, verifies size and digest, and makes the
content a blob by one move. A failed or abandoned upload never becomes visible.

An upload whose finishing failed after the commit (a full disk while the blob's
directory was made, a storage outage mid-move) is *sealed*: its committed data
is its content, reported by its status, and the next finishing PUT ingests it.
No acknowledged byte is lost, whichever step failed.

Hashing happens while bytes arrive, in large batches off the event loop and in
parallel with the write; a request is answered once its bytes are written, while
its last batches may still be hashed. The running hash lives in a small
per-process cache: it is only an optimisation. When the worker finishing an
upload did not see every byte (chunks served by other workers), it hashes the
stored data again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from anyio import to_thread

from storage_drivers import FileWriter, PathNotFound, StorageDriver, StorageError, StorageUnavailable

from ..errors import ErrorCode, RegistryError
from ..references import Digest, Hasher, RepositoryName, UploadId, new_hasher
from . import paths
from .batches import ALIGNMENT, BatchBuffers
from .blobs import BlobStore

log = logging.getLogger("registry")

MIN_BATCH = 512 << 10
MAX_BATCH = 4 << 20
"""Bytes gathered before one write+hash in worker threads. Larger batches cost fewer thread hops
and make larger disk writes (a lone chunked push ran about 15% faster with 4 MiB than with 2 MiB).
Both are multiples of ALIGNMENT."""
IN_FLIGHT = 2
"""Batches of one upload being written and hashed while the next one fills: with two, the threads
still have work while the event loop is busy elsewhere (a lone push ran about 8% faster than with
one). Each upload holds one more, filling."""
BUFFERS_KEPT = 2 * IN_FLIGHT + 1
"""Buffers a worker keeps for reuse: a lone chunked push holds this many when a request starts
while the one before it is still being hashed."""
FINISH_DEADLINE = 25.0
"""Seconds a finishing PUT waits, once its body is in, for the storage to commit and move the
upload: within the 30 s clients and proxies wait, where one stalled S3 copy may take 100 s."""
UPLOAD_MEMORY = 12 << 20
"""The batches of all uploads arriving at one worker stay within this where they can (never
below MIN_BATCH each); a lone upload gets MAX_BATCH."""


@dataclass(frozen=True, slots=True)
class _RunningHash:
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
        self._entries: OrderedDict[tuple[str, str], _RunningHash] = OrderedDict()
        self._capacity = capacity

    def take(self, key: tuple[str, str], offset: int) -> _RunningHash | None:
        """The running hash if it covers exactly ``offset`` bytes; removed from the cache."""
        entry = self._entries.pop(key, None)
        return entry if entry is not None and entry.offset == offset else None

    def put(self, key: tuple[str, str], entry: _RunningHash) -> None:
        self._entries[key] = entry
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def drop(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)


def range_header(size: int) -> str:
    """The upload's ``Range`` header value; ``0-0`` for an empty upload, as Docker expects."""
    return f"0-{max(size - 1, 0)}"


class Uploads:
    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self._driver = driver
        self._blobs = blobs
        self._hashes = HasherCache()
        self._buffers = BatchBuffers(MAX_BATCH, keep=BUFFERS_KEPT)
        self._receiving = 0
        self._finishing: dict[tuple[str, str], asyncio.Future[int]] = {}
        """Finishings under way in this process, by (name, id): some outlive their request."""

    async def start(self, name: RepositoryName, algorithm: str = "sha256") -> UploadId:
        upload_id = UploadId(str(uuid.uuid4()))
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        await self._driver.put_content(paths.upload_started_at(name, upload_id), started)
        self._hashes.put((name, upload_id), _RunningHash(algorithm, 0, new_hasher(algorithm)))
        return upload_id

    async def size(self, name: RepositoryName, upload_id: UploadId) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN when there is no such upload."""
        await self._require(name, upload_id)
        writer, sealed = await self._open(paths.upload_data(name, upload_id))
        if writer is None:
            return sealed
        await writer.close()
        return writer.size

    async def _open(self, data_path: str) -> tuple[FileWriter | None, int]:
        """The writer continuing the upload's data, or (None, size) for a sealed upload.

        Unfinished data is not stat-able (S3 keeps it in a multipart upload); its writer knows
        its size. Committed data is what a writer no longer continues: on the filesystem it
        opens empty, on S3 it finds its multipart upload completed and refuses.
        """
        try:
            writer = await self._driver.writer(data_path, append=True)
        except StorageError as exc:
            sealed = await self._sealed_size(data_path)
            if sealed is None and isinstance(exc, PathNotFound):
                raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"reason": exc.detail}) from None
            if sealed is None:
                raise
            log.info("continuing a sealed upload at %s (%s)", data_path, exc.detail)
            return None, sealed
        if writer.size == 0:
            sealed = await self._sealed_size(data_path)
            if sealed is not None:
                await writer.cancel()
                return None, sealed
        return writer, writer.size

    async def _sealed_size(self, data_path: str) -> int | None:
        try:
            return (await self._driver.stat(data_path)).size
        except PathNotFound:
            return None

    async def append(
        self,
        name: RepositoryName,
        upload_id: UploadId,
        body: AsyncIterator[bytes],
        start: int | None = None,
    ) -> int:
        """Append ``body``; when ``start`` is given it must equal the current size (else 416 and
        nothing changes). Returns the new size."""
        await self._require(name, upload_id)
        writer, sealed = await self._open(paths.upload_data(name, upload_id))
        if writer is None:
            _refuse_beyond_sealed(sealed, start)
        try:
            running = await self._write_body(body, writer, self._continue(name, upload_id, writer, start))
        except BaseException:
            self._hashes.drop((name, upload_id))
            await writer.close()
            raise
        await writer.close()
        if running is not None:
            self._hashes.put((name, upload_id), running)
        return writer.size

    async def complete(
        self,
        name: RepositoryName,
        upload_id: UploadId,
        digest: Digest,
        body: AsyncIterator[bytes] | None = None,
        start: int | None = None,
    ) -> int:
        """Append the last chunk, verify the whole upload against ``digest`` and make it a blob of
        ``name``. A mismatch discards the upload (DIGEST_INVALID). Returns the blob's size.

        Once the body is written the rest (commit, verify, ingest) goes on to its end even when
        the answer cannot wait for it: past FINISH_DEADLINE the client is told to retry, and the
        retry finds the upload sealed, or the blob already made."""
        try:
            await self._require(name, upload_id)
        except RegistryError:
            if body is None:  # a retry of a finishing whose answer was lost, when the blob is in
                with contextlib.suppress(RegistryError):
                    return await self._blobs.stat(name, digest)
            raise
        data_path = paths.upload_data(name, upload_id)
        earlier = self._finishing.get((name, upload_id))
        if earlier is not None and body is None:
            # A retry while this process still finishes the upload: wait for that finishing
            # rather than start another copy of the same data.
            return await _answer_within_deadline(earlier, data_path)
        writer, size = await self._open(data_path)
        running = None
        if writer is None:
            # Sealed by an earlier finishing that failed later: its data is the whole upload.
            if start is not None and start != size:
                _refuse_beyond_sealed(size, start)
            if body is not None and await _has_bytes(body):
                _refuse_beyond_sealed(size, size)
        else:
            try:
                running = self._continue(name, upload_id, writer, start)
                if body is not None:
                    running = await self._write_body(body, writer, running)
            except BaseException:
                self._hashes.drop((name, upload_id))
                await writer.close()
                raise
        finishing = asyncio.ensure_future(
            self._finish(name, upload_id, digest, writer=writer, running=running, size=size)
        )
        key = (name, upload_id)
        self._finishing[key] = finishing
        finishing.add_done_callback(lambda _: self._finishing.pop(key, None))
        return await _answer_within_deadline(finishing, data_path)

    async def _finish(
        self,
        name: RepositoryName,
        upload_id: UploadId,
        digest: Digest,
        *,
        writer: FileWriter | None,
        running: _RunningHash | None,
        size: int,
    ) -> int:
        """Commit the upload's data (unless sealed), verify it and make it the blob; its size."""
        data_path = paths.upload_data(name, upload_id)
        if writer is not None:
            try:
                await writer.commit()
            except BaseException:
                self._hashes.drop((name, upload_id))
                await writer.close()
                raise
            size = writer.size
        if running is not None and running.algorithm == digest.algorithm:
            computed = await running.hexdigest()
        else:
            computed = await self._hash_stored(data_path, digest.algorithm)
        if computed != digest.hex:
            await self.cancel(name, upload_id)
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                {"expected": str(digest), "computed": f"{digest.algorithm}:{computed}"},
            )
        await self._blobs.ingest(name, data_path, digest, size)
        try:
            # BLOB_UPLOAD_UNKNOWN: a concurrent finishing of the same upload deleted it first.
            with contextlib.suppress(RegistryError):
                await self._delete(name, upload_id)
        except StorageError as exc:
            # The blob is in place: the client gets its 201, upload purging removes the rest.
            log.warning("the finished upload %s stays until purged: %s", upload_id, exc)
        return size

    async def cancel(self, name: RepositoryName, upload_id: UploadId) -> None:
        await self._require(name, upload_id)
        await self._delete(name, upload_id)

    async def _delete(self, name: RepositoryName, upload_id: UploadId) -> None:
        self._hashes.drop((name, upload_id))
        try:
            await self._driver.delete(paths.upload(name, upload_id))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id}) from None

    async def _require(self, name: RepositoryName, upload_id: UploadId) -> None:
        try:
            await self._driver.stat(paths.upload_started_at(name, upload_id))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id}) from None

    def _continue(
        self, name: RepositoryName, upload_id: UploadId, writer: FileWriter, start: int | None
    ) -> _RunningHash | None:
        """Check the chunk continues the upload; the running hash to extend, if this process has
        one covering every byte so far."""
        if start is not None and start != writer.size:
            raise RegistryError(
                ErrorCode.UPLOAD_RANGE_INVALID,
                {"expected_start": writer.size, "start": start},
                headers={"Range": range_header(writer.size)},
            )
        running = self._hashes.take((name, upload_id), writer.size)
        if running is None and writer.size == 0:
            running = _RunningHash("sha256", 0, new_hasher("sha256"))
        return running

    async def _write_body(
        self, body: AsyncIterator[bytes], writer: FileWriter, running: _RunningHash | None
    ) -> _RunningHash | None:
        """``_pump``, counted among the uploads this worker is receiving (see ``_batch_size``);
        the running hash, extended, when there is one."""
        self._receiving += 1
        try:
            hashing = await _pump(body, writer, running, self._batch_size, self._buffers)
        finally:
            self._receiving -= 1
        if running is None:
            return None
        return _RunningHash(running.algorithm, writer.size, running.hasher, hashing)

    def _batch_size(self) -> int:
        share = UPLOAD_MEMORY // ((IN_FLIGHT + 1) * self._receiving)
        return max(MIN_BATCH, min(MAX_BATCH, share - share % ALIGNMENT))

    async def _hash_stored(self, path: str, algorithm: str) -> str:
        hasher = new_hasher(algorithm)
        async for chunk in self._driver.reader(path):
            await to_thread.run_sync(hasher.update, chunk)
        return hasher.hexdigest()

    async def purge(self, name: RepositoryName, older_than: float, dry_run: bool) -> list[str]:
        """Delete the uploads of ``name`` started (or, lacking a start time, last written) before
        ``older_than`` (epoch seconds); the paths of those purged."""
        try:
            entries = await self._driver.list(paths.uploads(name))
        except PathNotFound:
            return []
        purged = []
        for entry in entries:
            started = await self._started_at(entry)
            if started is not None and started < older_than:
                purged.append(entry)
                if not dry_run:
                    with contextlib.suppress(PathNotFound):  # another worker purged it first
                        await self._driver.delete(entry)
        return purged

    async def _started_at(self, upload_dir: str) -> float | None:
        try:
            text = (await self._driver.get_content(f"{upload_dir}/{paths.UPLOAD_STARTED_AT}")).decode()
            return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
        except (PathNotFound, UnicodeDecodeError, ValueError):
            pass
        newest = None
        try:
            async for info in self._driver.walk(upload_dir):
                newest = info.modified if newest is None else max(newest, info.modified)
            if newest is None:
                newest = (await self._driver.stat(upload_dir)).modified
        except PathNotFound:
            return None  # purged or finished meanwhile
        return newest


async def _answer_within_deadline(finishing: asyncio.Future[int], data_path: str) -> int:
    """The blob's size once ``finishing`` ends, if within FINISH_DEADLINE; else StorageUnavailable
    while it goes on. A request cancelled meanwhile leaves it going on too."""
    try:
        return await asyncio.wait_for(asyncio.shield(finishing), FINISH_DEADLINE)
    except (TimeoutError, asyncio.CancelledError) as exc:
        finishing.add_done_callback(_report_late_failure)
        if isinstance(exc, TimeoutError):
            raise StorageUnavailable(data_path, "finishing goes on past its deadline") from None
        raise


def _report_late_failure(finishing: asyncio.Future[int]) -> None:
    """Log how a finishing the client stopped waiting for ended, when it failed."""
    if not finishing.cancelled() and (error := finishing.exception()) is not None:
        log.warning("finishing an upload after its answer failed: %s", error)


def _refuse_beyond_sealed(size: int, start: int | None) -> NoReturn:
    """A sealed upload takes no more bytes: its content is final, only its finishing is left."""
    raise RegistryError(
        ErrorCode.UPLOAD_RANGE_INVALID,
        {"reason": "the upload holds all its content; finish it with PUT and no body", "start": start},
        headers={"Range": range_header(size)},
    )


async def _has_bytes(body: AsyncIterator[bytes]) -> bool:
    async for piece in body:
        if piece:
            return True
    return False


async def _pump(
    body: AsyncIterator[bytes],
    writer: FileWriter,
    running: _RunningHash | None,
    batch_size: Callable[[], int],
    buffers: BatchBuffers,
) -> asyncio.Future[None] | None:
    """Gather ``body`` into batches of ``batch_size()`` bytes (asked anew for each batch) and write
    and hash each in worker threads while the next ones arrive; IN_FLIGHT batches at most wait for
    the threads. The first batch ends at a multiple of ALIGNMENT in the file, so that the others
    start at one.

    Returns once every batch is written, with the hashing of the last ones, which continues
    ``running`` (and its own unfinished hashing): the next request need not wait for it.
    """
    lanes = _Lanes(writer, running, buffers)
    wanted = batch_size()
    batch, filled = buffers.take(wanted), 0
    wanted -= writer.size % ALIGNMENT
    try:
        async for piece in body:
            view = memoryview(piece)
            while view:
                count = min(len(view), wanted - filled)
                batch[filled : filled + count] = view[:count]
                filled += count
                view = view[count:]
                if filled == wanted:
                    await lanes.flush(batch, filled)
                    wanted = batch_size()
                    batch, filled = buffers.take(wanted), 0
        if filled:
            await lanes.flush(batch, filled)
        else:
            buffers.give_back(batch)
        return await lanes.written()
    finally:
        # A write still running in a thread must end before anyone closes the writer.
        await lanes.settle()


class _Lanes:
    """Writes batches in order in one lane and hashes them in order in another: each lane is a
    chain of worker-thread calls, a batch's call starting once the batch before it is done. A
    batch's buffer goes back once both are done with it."""

    def __init__(self, writer: FileWriter, running: _RunningHash | None, buffers: BatchBuffers) -> None:
        self._writer = writer
        self._hasher = running.hasher if running else None
        self._buffers = buffers
        self._last_write: asyncio.Future[None] | None = None
        self._last_hash = hashing = running.hashing if running else None
        # Steps of the batches in flight; an earlier request's hashing counts as one of them.
        self._in_flight: deque[list[asyncio.Future[None]]] = deque([[hashing]] if hashing else [])

    async def flush(self, batch: mmap.mmap, length: int) -> None:
        """Start writing and hashing ``batch``, after waiting while IN_FLIGHT batches are."""
        if len(self._in_flight) >= IN_FLIGHT:
            for step in self._in_flight.popleft():
                await step
        data = memoryview(batch)[:length]
        self._last_write = asyncio.ensure_future(_after(self._last_write, self._writer.write, data))
        steps: list[asyncio.Future[None]] = [self._last_write]
        if self._hasher is not None:
            self._last_hash = asyncio.ensure_future(_after(self._last_hash, _hash, self._hasher, data))
            steps.append(self._last_hash)
        self._in_flight.append(steps)
        unfinished = len(steps)

        def release(_: asyncio.Future[None]) -> None:
            nonlocal unfinished
            unfinished -= 1
            if not unfinished:
                self._buffers.give_back(batch)

        for step in steps:
            step.add_done_callback(release)

    async def written(self) -> asyncio.Future[None] | None:
        """Wait until every batch is written (raising the first failure); the hashing left."""
        if self._last_write is not None:
            await self._last_write
        return self._last_hash

    async def settle(self) -> None:
        """Wait, without raising, until no batch is being written: even when cancelled, which is
        raised only afterwards (a write into a closed descriptor could land in another file).
        Each write starts after the one before it, so the last one tells."""
        if self._last_write is None:
            return
        cancelled = False
        while not self._last_write.done():
            try:
                await asyncio.wait([self._last_write])
            except asyncio.CancelledError:
                cancelled = True
        if not self._last_write.cancelled():
            self._last_write.exception()  # retrieved: the error that stopped the upload is raised
        if cancelled:
            raise asyncio.CancelledError


async def _after(
    previous: asyncio.Future[None] | None, step: Callable[..., Awaitable[None]], *args: object
) -> None:
    if previous is not None:
        await previous
    await step(*args)


async def _hash(hasher: Hasher, data: memoryview) -> None:
    await to_thread.run_sync(hasher.update, data)
