"""Blob upload sessions, kept in storage so any worker (or a restarted server) continues any upload.

An upload exists while its ``startedat`` file does. Bytes are appended to its
``data`` file (through the data path in ``pump.py``); finishing commits them,
verifies size and digest, and makes the content a blob by one move. A failed or
abandoned upload never becomes visible.

An upload whose finishing failed after the commit (a full disk while the blob's
directory was made, a storage outage mid-move) is *sealed*: its committed data
is its content, reported by its status, and the next finishing PUT ingests it.
No acknowledged byte is lost, whichever step failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from offload import to_bulk_thread
from storage_drivers import FileWriter, PathNotFound, StorageDriver, StorageError, StorageUnavailable

from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName, UploadId, new_hasher
from . import paths
from .pump import Body, HasherCache, Receiver, RunningHash
from .services import BlobService

log = logging.getLogger("registry")

FINISH_DEADLINE = 25.0
"""Seconds a finishing PUT waits, once its body is in, for the storage to commit and move the
upload: within the 30 s clients and proxies wait, where one stalled S3 copy may take 100 s."""


@dataclass(frozen=True)
class SessionWatch:
    """Told of the upload sessions this process opens (+1) and closes (-1: finished, cancelled,
    refused for a wrong digest, purged), the closed ones only if opened at ``since`` (epoch
    seconds) or later, so a count kept from ``since`` stays the number open whoever closes them."""

    since: float
    change: Callable[[int], None]

    def opened_since(self, opened: float) -> bool:
        """Whether a session whose start record is dated ``opened`` was opened at ``since`` or
        later. A store that keeps times to the second (S3) is compared by the second; a finer
        time exactly, so a session opened just before a restart is not taken for a newer one."""
        if opened == int(opened):
            return opened >= int(self.since)
        return opened >= self.since


class Uploads:
    def __init__(self, driver: StorageDriver, blobs: BlobService) -> None:
        self.watch: SessionWatch | None = None
        self._driver = driver
        self._blobs = blobs
        self._hashes = HasherCache()
        self._receiver = Receiver(*driver.upload_memory) if driver.upload_memory else Receiver()
        self._finishing: dict[tuple[str, str], asyncio.Future[int]] = {}
        """Finishings under way in this process, by (name, id): some outlive their request."""

    async def start(self, name: RepositoryName, algorithm: str = "sha256") -> UploadId:
        upload_id = UploadId(str(uuid.uuid4()))
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        await self._driver.put_content(paths.upload_started_at(name, upload_id), started)
        if self.watch is not None:
            self.watch.change(1)
        self._hashes.put((name, upload_id), RunningHash(algorithm, 0, new_hasher(algorithm)))
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
        return await self._driver.file_size(data_path)

    async def append(
        self,
        name: RepositoryName,
        upload_id: UploadId,
        body: Body,
        start: int | None = None,
        *,
        length: int | None = None,
    ) -> int:
        """Append ``body`` (of ``length`` bytes, when its request declares it); when ``start`` is
        given it must equal the current size (else 416 and nothing changes). Returns the new size."""
        await self._require(name, upload_id)
        writer, sealed = await self._open(paths.upload_data(name, upload_id))
        if writer is None:
            _refuse_beyond_sealed(sealed, start)
        try:
            running = await self._receiver.write(
                body, writer, self._continue(name, upload_id, writer, start), length=length
            )
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
        body: Body | None = None,
        start: int | None = None,
        *,
        length: int | None = None,
    ) -> int:
        """Append the last chunk (of ``length`` bytes, when its request declares it), verify the
        whole upload against ``digest`` and make it a blob of ``name``. A mismatch discards the
        upload (DIGEST_INVALID). Returns the blob's size.

        Once the body is written the rest (commit, verify, ingest) goes on to its end even when
        the answer cannot wait for it: past FINISH_DEADLINE the client is told to retry, and the
        retry finds the upload sealed, or the blob already made."""
        try:
            opened = await self._require(name, upload_id)
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
                    running = await self._receiver.write(body, writer, running, length=length, final=True)
            except BaseException:
                self._hashes.drop((name, upload_id))
                await writer.close()
                raise
        finishing = asyncio.ensure_future(
            self._finish(name, upload_id, digest, opened, writer=writer, running=running, size=size)
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
        opened: float,
        *,
        writer: FileWriter | None,
        running: RunningHash | None,
        size: int,
    ) -> int:
        """Commit the upload's data (unless sealed), verify it and make it the blob; its size."""
        data_path = paths.upload_data(name, upload_id)
        try:
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
                with contextlib.suppress(RegistryError):  # cancelled by its client meanwhile
                    await self.cancel(name, upload_id)
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    {"expected": str(digest), "computed": f"{digest.algorithm}:{computed}"},
                )
            await self._blobs.ingest(name, data_path, digest, size)
        except PathNotFound:
            # Cancelled, purged or finished by another request meanwhile: its data is gone.
            self._hashes.drop((name, upload_id))
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id}) from None
        self._hashes.drop((name, upload_id))
        started_at = paths.upload_started_at(name, upload_id)
        try:
            # The start record was all the upload held (its data was committed, then moved or
            # dropped by ingest): its delete takes the emptied directory too.
            await self._close_session(started_at, opened)
        except StorageError as exc:
            # The blob is in place: the client gets its 201, upload purging removes the rest.
            log.warning("the finished upload %s stays until purged: %s", upload_id, exc)
        return size

    async def cancel(self, name: RepositoryName, upload_id: UploadId) -> None:
        opened = await self._require(name, upload_id)
        await self._delete(name, upload_id, opened)

    async def _delete(self, name: RepositoryName, upload_id: UploadId, opened: float) -> None:
        self._hashes.drop((name, upload_id))
        if not await self._close_session(paths.upload_started_at(name, upload_id), opened):
            # Closed by another request meanwhile (finished, cancelled, purged): it removes the rest.
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id})
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(paths.upload(name, upload_id))

    async def _close_session(self, started_at: str, opened: float) -> bool:
        """Remove the session's start record; whether this call removed it. Only the request that
        removed it counts the session closed, so finishing, cancelling and purging, racing in any
        workers, count it once. Where a delete cannot tell (S3: one DELETE request, answered
        alike whether the object was there), it removes the record and says so: closings racing
        at the same instant may then both count."""
        if not self._driver.deletes_exactly:
            await self._driver.delete_many([started_at])
        else:
            try:
                await self._driver.delete(started_at)
            except PathNotFound:
                return False
        if self.watch is not None and self.watch.opened_since(opened):
            self.watch.change(-1)
        return True

    async def _require(self, name: RepositoryName, upload_id: UploadId) -> float:
        """When the upload was opened (its start record's time); BLOB_UPLOAD_UNKNOWN if it is not."""
        try:
            info = await self._driver.stat(paths.upload_started_at(name, upload_id))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": upload_id}) from None
        return info.modified

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
            await to_bulk_thread(hasher.update, chunk)
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
                    # Counted closed only if its start record was still there: a directory left
                    # without it was counted when the record went.
                    await self._close_session(paths.started_at_in(entry), started)
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
        {
            "reason": "the upload holds all its content; finish it with PUT and no body",
            "expected_start": size,
            "start": start,
        },
    )


async def _has_bytes(body: Body) -> bool:
    return await body.fill(memoryview(bytearray(1))) > 0
