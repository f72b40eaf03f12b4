"""Blob upload sessions, kept in storage so any worker (or a restarted server) continues any upload.

An upload exists while its ``startedat`` file does. Bytes are appended to its
``data`` file; finishing verifies size and digest before the content becomes a
blob, by one move. A failed or abandoned upload never becomes visible.

Hashing happens while bytes arrive, in large batches off the event loop and in
parallel with the write. The running hash lives in a small per-process cache: it
is only an optimisation. When the worker finishing an upload did not see every
byte (chunks served by other workers), it hashes the stored data again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from anyio import to_thread

from storage_drivers import FileWriter, PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, Hasher, RepositoryName, UploadId, new_hasher
from . import paths
from .blobs import BlobStore

MIN_BATCH = 1 << 20
MAX_BATCH = 4 << 20
"""Bytes gathered before one write+hash in worker threads. Larger batches cost fewer thread hops
(a lone 1 GiB push runs about a quarter faster with 4 MiB than with 1 MiB); each upload holds two."""
UPLOAD_MEMORY = 8 << 20
"""The batches of all uploads arriving at one worker stay within this where they can (never
below MIN_BATCH each)."""
SMALL_PIECE = 16 << 10
"""Request pieces shorter than this are copied together rather than kept one by one."""


@dataclass(frozen=True, slots=True)
class _RunningHash:
    algorithm: str
    offset: int
    hasher: Hasher


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
        self._receiving = 0

    async def start(self, name: RepositoryName, algorithm: str = "sha256") -> UploadId:
        upload_id = UploadId(str(uuid.uuid4()))
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        await self._driver.put_content(paths.upload_started_at(name, upload_id), started)
        self._hashes.put((name, upload_id), _RunningHash(algorithm, 0, new_hasher(algorithm)))
        return upload_id

    async def size(self, name: RepositoryName, upload_id: UploadId) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN when there is no such upload."""
        await self._require(name, upload_id)
        # Unfinished data is not stat-able (S3 keeps it in a multipart upload); its writer knows.
        writer = await self._driver.writer(paths.upload_data(name, upload_id), append=True)
        await writer.close()
        return writer.size

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
        writer = await self._driver.writer(paths.upload_data(name, upload_id), append=True)
        try:
            running = self._continue(name, upload_id, writer, start)
            await self._write_body(body, writer, running.hasher if running else None)
        except BaseException:
            self._hashes.drop((name, upload_id))
            await writer.close()
            raise
        await writer.close()
        if running is not None:
            self._hashes.put((name, upload_id), _RunningHash(running.algorithm, writer.size, running.hasher))
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
        ``name``. A mismatch discards the upload (DIGEST_INVALID). Returns the blob's size."""
        await self._require(name, upload_id)
        data_path = paths.upload_data(name, upload_id)
        writer = await self._driver.writer(data_path, append=True)
        try:
            running = self._continue(name, upload_id, writer, start)
            if body is not None:
                await self._write_body(body, writer, running.hasher if running else None)
            await writer.commit()
        except BaseException:
            self._hashes.drop((name, upload_id))
            await writer.close()
            raise
        size = writer.size
        if running is not None and running.algorithm == digest.algorithm:
            computed = running.hasher.hexdigest()
        else:
            computed = await self._hash_stored(data_path, digest.algorithm)
        if computed != digest.hex:
            await self.cancel(name, upload_id)
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                {"expected": str(digest), "computed": f"{digest.algorithm}:{computed}"},
            )
        await self._blobs.ingest(name, data_path, digest, size)
        await self._delete(name, upload_id)
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
        self, body: AsyncIterator[bytes], writer: FileWriter, hasher: Hasher | None
    ) -> None:
        """``_pump``, counted among the uploads this worker is receiving (see ``_batch_size``)."""
        self._receiving += 1
        try:
            await _pump(body, writer, hasher, self._batch_size)
        finally:
            self._receiving -= 1

    def _batch_size(self) -> int:
        return max(MIN_BATCH, min(MAX_BATCH, UPLOAD_MEMORY // (2 * self._receiving)))

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


async def _pump(
    body: AsyncIterator[bytes], writer: FileWriter, hasher: Hasher | None, batch_size: Callable[[], int]
) -> None:
    """Write (and hash) ``body`` in batches of ``batch_size()`` bytes (asked anew for each batch)
    in worker threads while the next batch arrives; an upload holds at most two batches.

    The request's pieces are handed over as they came, not copied together: only pieces under
    SMALL_PIECE are joined, which bounds the number of pieces (and their overhead) per batch.
    """
    batch: list[bytes | bytearray] = []
    gathered, wanted = 0, batch_size()
    pending: asyncio.Future[None] | None = None
    try:
        async for piece in body:
            if len(piece) >= SMALL_PIECE:
                batch.append(piece)
            elif batch and isinstance(batch[-1], bytearray):
                batch[-1] += piece
            else:
                batch.append(bytearray(piece))
            gathered += len(piece)
            if gathered >= wanted:
                if pending is not None:
                    await pending  # at most one batch in flight
                pending = asyncio.ensure_future(_flush(writer, hasher, batch))
                batch, gathered, wanted = [], 0, batch_size()
    finally:
        # A write still running in a thread must end before anyone closes the writer.
        if pending is not None:
            await pending
    if gathered:
        await _flush(writer, hasher, batch)


async def _flush(writer: FileWriter, hasher: Hasher | None, batch: list[bytes | bytearray]) -> None:
    if hasher is None:
        await writer.write_pieces(batch)
    else:
        await asyncio.gather(writer.write_pieces(batch), to_thread.run_sync(_hash, hasher, batch))


def _hash(hasher: Hasher, pieces: list[bytes | bytearray]) -> None:
    for piece in pieces:
        hasher.update(piece)
