"""Blob upload sessions, kept in storage so any worker (or a restarted server) continues any upload.

An upload exists while its ``startedat`` file does. Bytes are appended to its
``data`` file (through the data path in ``pump.py``); finishing verifies size and
digest before the content becomes a blob, by one move. A failed or abandoned
upload never becomes visible.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from anyio import to_thread

from storage_drivers import FileWriter, PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName, UploadId, new_hasher
from . import paths
from .pump import HasherCache, Receiver, RunningHash
from .services import BlobService


class Uploads:
    def __init__(self, driver: StorageDriver, blobs: BlobService) -> None:
        self._driver = driver
        self._blobs = blobs
        self._hashes = HasherCache()
        self._receiver = Receiver()

    async def start(self, name: RepositoryName, algorithm: str = "sha256") -> UploadId:
        upload_id = UploadId(str(uuid.uuid4()))
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        await self._driver.put_content(paths.upload_started_at(name, upload_id), started)
        self._hashes.put((name, upload_id), RunningHash(algorithm, 0, new_hasher(algorithm)))
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
            running = await self._receiver.write(body, writer, self._continue(name, upload_id, writer, start))
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
        ``name``. A mismatch discards the upload (DIGEST_INVALID). Returns the blob's size."""
        await self._require(name, upload_id)
        data_path = paths.upload_data(name, upload_id)
        writer = await self._driver.writer(data_path, append=True)
        try:
            running = self._continue(name, upload_id, writer, start)
            if body is not None:
                running = await self._receiver.write(body, writer, running)
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
    ) -> RunningHash | None:
        """Check the chunk continues the upload; the running hash to extend, if this process has
        one covering every byte so far."""
        if start is not None and start != writer.size:
            raise RegistryError(
                ErrorCode.UPLOAD_RANGE_INVALID, {"expected_start": writer.size, "start": start}
            )
        running = self._hashes.take((name, upload_id), writer.size)
        if running is None and writer.size == 0:
            running = RunningHash("sha256", 0, new_hasher("sha256"))
        return running

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
            text = (await self._driver.get_content(paths.started_at_in(upload_dir))).decode()
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
