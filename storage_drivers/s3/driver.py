"""S3 driver: a path is stored at key ``rootdirectory`` + path, Distribution's exact layout.

Blocking S3 calls run in worker threads; listings, deletes and copies run whole in one
thread call (large batches rather than a thread hop per page). Each call goes through the
calls of its time budget (clients.py): ``quick`` for small requests, ``bulk`` for those
that move data; transient failures are retried within that budget before anything reaches
the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from anyio import CancelScope
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from offload import to_bulk_thread, to_thread

from ..base import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver, StorageError
from ..config import Parameters
from .clients import BULK, QUICK, CallBudget
from .errors import TRANSIENT_TRANSPORT, in_thread, status_code, translate
from .lean import LeanObjects, ObjectCalls, ObjectHead, Readable
from .listing import LIST_PAGE
from .settings import MAX_PART, S3Settings, parse_settings
from .signed import Stream
from .writer import HIDDEN_PREFIX, S3Writer, WriterCalls

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client

READ_CHUNK = (512 - 8) << 10
"""A blob read comes in pieces of at most this size, kept under the workers' malloc mapping threshold
(512 KiB, registry/supervisor.py) so that each reuses freed heap memory: 1 MiB pieces were each
a fresh mapping, whose page faults and zeroing made a pull through the registry cost 0.26 s of
CPU per 256 MiB against 0.14 s in 504 KiB pieces (Ceph RGW, one worker). 4 MiB pieces pulled a
quarter slower (a piece goes out only once all its bytes are in)."""
PIECES_PER_HOP = 2
"""Pieces read in one worker-thread call where reads take threads (TLS, boto3's bodies), the
next ones read while these are sent: at most twice this many pieces in memory per reader."""
READ_RESUMES = 3
"""A ranged GET cut off mid-stream is resumed from where it stopped this many times."""
DELETE_BATCH = 1000
"""The most keys one DeleteObjects request takes."""
PUTS_IN_FLIGHT = 32
"""Small objects a batch write sends at once."""


async def _received(body: Stream) -> AsyncGenerator[bytes]:
    """``body`` read on the event loop, each piece as it arrives (at most READ_CHUNK)."""
    try:
        while piece := await body.receive(READ_CHUNK):
            yield piece
    finally:
        body.close()


async def _read_in_threads(body: Readable, length: int | None) -> AsyncGenerator[bytes]:
    """``body`` (``length`` bytes; None: to its end) read in worker threads, the next pieces
    while these are sent."""
    pending: asyncio.Future[list[bytes]] | None = _read_ahead(body)
    try:
        while pending is not None:
            pieces = await pending
            if length is not None:
                length -= sum(len(piece) for piece in pieces)
            pending = _read_ahead(body) if pieces and (length is None or length > 0) else None
            for piece in pieces:
                yield piece
    finally:
        if pending is not None:
            # The read must end before its body is closed, even when the caller is cancelled.
            with CancelScope(shield=True), contextlib.suppress(Exception):
                await pending
        body.close()


def _read_ahead(body: Readable) -> asyncio.Future[list[bytes]]:
    """The next pieces of ``body``, read in a worker thread from now on."""
    return asyncio.ensure_future(to_bulk_thread(_pieces, body))


def _pieces(body: Readable) -> list[bytes]:
    """Up to PIECES_PER_HOP pieces of ``body``; none at its end."""
    pieces = []
    for _ in range(PIECES_PER_HOP):
        piece = body.read(READ_CHUNK)
        if not piece:
            break
        pieces.append(piece)
    return pieces


def _is_hidden(name: str) -> bool:
    return name.startswith(HIDDEN_PREFIX)


def _credentials(settings: S3Settings) -> Credentials | None:
    """The configured keys, else botocore's chain (environment, profile, instance role) as a
    boto3 session finds it; None for anonymous access."""
    if settings.accesskey or settings.secretkey:
        return Credentials(settings.accesskey or "", settings.secretkey or "")
    import botocore.session  # noqa: PLC0415 - its chain only where no keys are configured

    return botocore.session.Session().get_credentials()


class S3Driver(StorageDriver):
    name = "s3"
    listing_carries_stats = True
    reads_are_round_trips = True
    # Streamed parts send each batch on as it comes: 8 uploads at once on a worker hold 6 MiB
    # in batches of 256 KiB instead of 12 MiB in batches of 512 KiB (bench/S3.md).
    upload_memory = (4 << 20, 256 << 10)

    def __init__(
        self,
        settings: S3Settings,
        *,
        quick: CallBudget = QUICK,
        bulk: CallBudget = BULK,
        redirect_expiry: float = 1200.0,
    ) -> None:
        """S3 calls keep within the ``quick`` and ``bulk`` budgets (clients.py); redirect URLs
        stay valid for ``redirect_expiry`` seconds."""
        self.settings = settings
        self.bucket = settings.bucket
        self.redirect_expiry = redirect_expiry
        self._prefix = settings.key_prefix
        self._boto3_clients: list[S3Client] = []
        """Only where the signed path does not serve the endpoint (lean.py), closed with the driver."""
        self._session: Session | None = None
        credentials = _credentials(settings)
        self._objects = self._calls(credentials, settings.regionendpoint, quick)
        self._bulk_objects = self._calls(credentials, settings.regionendpoint, bulk)
        self._presigns = (
            self._calls(credentials, settings.redirectendpoint, quick)
            if settings.redirectendpoint
            else self._objects
        )
        streams = self._bulk_objects if isinstance(self._bulk_objects, LeanObjects) else None
        self._writer_calls = WriterCalls(settings, self._objects, self._bulk_objects, streams)

    def _calls(
        self, credentials: Credentials | None, endpoint: str | None, budget: CallBudget
    ) -> ObjectCalls:
        """The calls on ``endpoint`` within ``budget``: signed here (lean.py) where that path
        applies, else through a boto3 client, which also resolves an endpoint left unset (AWS's)."""
        endpoint_url = self.settings.endpoint_url(endpoint)
        if endpoint_url is not None and (
            lean := LeanObjects.create(credentials, self.settings, endpoint_url, budget)
        ):
            return lean
        from .boto_clients import make_client, new_session  # noqa: PLC0415 - boto3 only where needed
        from .boto_objects import BotoObjects  # noqa: PLC0415 - with the clients

        if self._session is None:
            self._session = new_session(self.settings)
        client = make_client(self._session, self.settings, endpoint, budget)
        self._boto3_clients.append(client)
        resolved = LeanObjects.create(credentials, self.settings, client.meta.endpoint_url, budget)
        return resolved or BotoObjects(client, self.bucket)

    @classmethod
    def from_parameters(cls, parameters: Parameters) -> S3Driver:
        return cls(parse_settings(parameters))

    def _key(self, path: str) -> str:
        return self._prefix + path[1:]

    def _dir_prefix(self, path: str) -> str:
        return self._key(path) + "/"

    def _path_of(self, key: str) -> str:
        return "/" + key[len(self._prefix) :]

    async def _head(self, path: str) -> ObjectHead:
        try:
            return await self._objects.head_async(self._key(path))
        except (BotoCoreError, ClientError) as exc:
            raise translate(path, exc) from exc

    async def _get_content(self, path: str) -> bytes:
        try:
            return await self._objects.get_async(self._key(path))
        except (BotoCoreError, ClientError) as exc:
            raise translate(path, exc) from exc

    async def _put_content(self, path: str, data: bytes) -> None:
        key, body, arguments = self._key(path), bytes(data), self.settings.put_arguments()
        await in_thread(path, lambda: self._objects.put(key, body, arguments))

    creates_exclusively = True
    """By a conditional PUT (``If-None-Match: *``), which Ceph RGW and AWS S3 honour. A create
    whose answer was lost, and that the client retried, answers False though it stored: a
    caller that stores a value of its own can tell by reading it (the mirror's leader record
    does)."""

    async def _create_content(self, path: str, data: bytes) -> bool:
        key, body = self._key(path), bytes(data)
        arguments = {**self.settings.put_arguments(), "IfNoneMatch": "*"}

        def create() -> bool:
            try:
                self._objects.put(key, body, arguments)
            except ClientError as exc:
                if status_code(exc) == 412:  # PreconditionFailed: something is stored there
                    return False
                raise
            return True

        return await in_thread(path, create)

    async def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> None:
        """Side by side; S3 answers a PUT once the object is stored, so ``durable`` changes nothing."""
        pending = list(reversed(items))

        async def worker() -> None:
            try:
                while pending:
                    await self._put_content(*pending.pop())
            except BaseException:
                pending.clear()  # the other workers stop after their current write
                raise

        await asyncio.gather(*(worker() for _ in range(min(PUTS_IN_FLIGHT, len(pending)))))

    def _reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        return self._streamed(path, offset, None if length is None else offset + length, None)

    async def _sized_reader(
        self, path: str, offset: int, length: int | None
    ) -> tuple[int, AsyncIterator[bytes]]:
        """One GET: its Content-Range gives the size."""
        end = None if length is None else offset + length
        if end == offset:
            return await super()._sized_reader(path, offset, length)
        try:
            body, etag, size = await in_thread(
                path, partial(self._bulk_objects.open, self._key(path), offset, end, "")
            )
        except InvalidOffset:  # at or past the end (or an empty object): the HEAD tells which
            return await super()._sized_reader(path, offset, length)
        chunks = self._streamed(path, offset, end, (body, etag))
        await anext(chunks)  # started: closing it from now on closes the body, read or not
        return size, chunks

    async def _streamed(
        self, path: str, position: int, end: int | None, opened: tuple[Readable, str] | None
    ) -> AsyncGenerator[bytes]:
        """The bytes from ``position`` to ``end`` (None: the object's end). ``opened``: a body
        already opened there and its ETag, for which an empty piece comes first."""
        key, resumes, etag = self._key(path), 0, ""
        if opened is None and end == position:
            if position > (await self._head(path)).size:
                raise InvalidOffset(path, f"offset {position} beyond the end")
            return
        while end is None or position < end:
            if opened is not None:
                body, etag = opened
            else:
                # A resumed read asks for the version it began with: it never splices a replaced object.
                try:
                    body, etag, _ = await in_thread(
                        path, partial(self._bulk_objects.open, key, position, end, etag)
                    )
                except InvalidOffset:
                    # Range starts at or past the end: an empty read at the end, else an error.
                    if position > (await self._head(path)).size:
                        raise
                    return
            if isinstance(body, Stream) and body.on_loop:
                pieces = _received(body)
            else:
                pieces = _read_in_threads(body, None if end is None else end - position)
            try:
                if opened is not None:
                    opened = None
                    yield b""
                async for piece in pieces:
                    position += len(piece)
                    yield piece
                return
            except TRANSIENT_TRANSPORT as exc:
                # Cut off mid-stream: resumed at ``position``, after the last piece handed out.
                resumes += 1
                if resumes > READ_RESUMES:
                    raise translate(path, exc) from exc
            finally:
                await pieces.aclose()
                body.close()  # ``pieces`` closes it, unless it was closed before it started

    async def _writer(self, path: str, append: bool) -> FileWriter:
        key = self._key(path)
        if append:
            return await S3Writer.resume(self._writer_calls, path, key)
        return S3Writer(self._writer_calls, path, key)

    async def _stat(self, path: str) -> FileInfo:
        with contextlib.suppress(PathNotFound):
            head = await self._head(path)
            return FileInfo(path, head.size, head.modified)
        prefix = self._dir_prefix(path)
        modified = await in_thread(path, lambda: self._objects.first_modified(prefix))
        if modified is None:
            raise PathNotFound(path)
        # S3 has no directories; the first object below stands in for its modification time.
        return FileInfo(path, 0, modified, is_dir=True)

    async def _file_size(self, path: str) -> int | None:
        try:
            return (await self._head(path)).size  # a HEAD alone: S3 keeps a directory apart
        except PathNotFound:
            return None

    async def _list(self, path: str, after: str | None, limit: int | None) -> list[str]:
        prefix = self._dir_prefix(path)
        names = await in_thread(path, lambda: self._children(prefix, after, limit))
        if names is None:
            raise PathNotFound(path)
        return [f"{path}/{name}" for name in names]

    def _children(self, prefix: str, after: str | None, limit: int | None) -> list[str] | None:
        """Up to ``limit`` names below ``prefix`` after ``after`` in lexical order; None when
        nothing is stored below ``prefix``.

        S3 lists keys in byte order, where a child directory ``d`` comes as ``d/``: after its
        siblings ``d-x`` and ``d.x``, which sort after ``d`` itself. So a directory not yet met
        can only sort before names already met if it is a start of the last key met that ends
        before a "-" or "."; those few are looked up before names after them are handed out.
        """
        start = "" if after is None else prefix + after  # every name after ``after`` has a key after this
        token = ""
        found: set[str] = set()
        stored = False
        while True:
            wanted = LIST_PAGE if limit is None else min(LIST_PAGE, limit + 2)
            page = self._objects.list_page(prefix, delimited=True, after=start, token=token, limit=wanted)
            keys = [item.key for item in page.objects] + page.prefixes
            stored = stored or bool(keys)
            for key in keys:
                name = key[len(prefix) :].rstrip("/")
                if name and (after is None or name > after) and not _is_hidden(name):
                    found.add(name)
            if page.next_token is None:
                break
            if limit is not None and self._first_names_known(prefix, found, max(keys), after, limit):
                break
            token = page.next_token
        if not stored and (after is None or not self._holds_anything(prefix)):
            return None
        return sorted(found)[:limit]

    def _first_names_known(
        self, prefix: str, found: set[str], last_key: str, after: str | None, limit: int
    ) -> bool:
        """Whether the first ``limit`` names of ``found`` are the directory's first, once the
        directories that may still sort before them (starts of ``last_key``, the last key
        listed) are looked up and added to ``found``."""
        last = last_key[len(prefix) :]
        for index, character in enumerate(last):
            start = last[:index]
            if character not in "-." or not start or start in found or _is_hidden(start):
                continue
            if after is not None and start <= after:
                continue
            if sum(1 for name in found if name < start) >= limit:
                return True  # later starts sort later still
            if self._holds_anything(prefix + start + "/"):
                found.add(start)
        return len(found) >= limit

    def _holds_anything(self, prefix: str) -> bool:
        return bool(self._objects.list_page(prefix, limit=1).objects)

    async def _scan(self, path: str, after: str, limit: int) -> list[str]:
        prefix = self._dir_prefix(path)

        def scan() -> list[str]:
            keys: list[str] = []
            token = ""
            while True:
                page = self._objects.list_page(
                    prefix, after=prefix + after, token=token, limit=min(LIST_PAGE, limit - len(keys))
                )
                keys += [item.key for item in page.objects if not _is_hidden(item.key.rpartition("/")[2])]
                if len(keys) >= limit or page.next_token is None:
                    return keys[:limit]
                token = page.next_token

        return [self._path_of(key) for key in await in_thread(path, scan)]

    async def _move(self, source: str, destination: str, size: int | None) -> None:
        if size is None:
            size = (await self._head(source)).size
        source_key, destination_key = self._key(source), self._key(destination)
        arguments = self.settings.put_arguments()
        single = size <= self.settings.multipartcopythresholdsize or size == 0

        def move() -> None:  # one thread hop for the copy and the deletion after it
            if single:
                self._bulk_objects.copy(source_key, destination_key, arguments)
            else:
                self._multipart_copy(source_key, destination_key, size)
            self._objects.delete(source_key)

        await in_thread(source, move)

    def _multipart_copy(self, source_key: str, destination_key: str, size: int) -> None:
        """Copy ``size`` bytes server-side in parts, several at once (needed above 5 GiB)."""
        chunk = min(max(self.settings.multipartcopychunksize, -(-size // 10_000)), MAX_PART)
        upload_id = self._objects.create_upload(destination_key, self.settings.put_arguments())

        def copy_part(number: int) -> tuple[int, str]:
            first = (number - 1) * chunk
            last = min(first + chunk, size) - 1
            span = f"{first}-{last}"
            return number, self._bulk_objects.copy_part(
                source_key, destination_key, upload_id, number, span=span
            )

        numbers = range(1, -(-size // chunk) + 1)
        try:
            with ThreadPoolExecutor(min(self.settings.multipartcopymaxconcurrency, len(numbers))) as pool:
                parts = list(pool.map(copy_part, numbers))
            self._bulk_objects.complete_upload(destination_key, upload_id, parts)
        except BaseException:
            # Best effort: the copy's own failure is what the caller needs. An upload already
            # gone (NoSuchUpload) needs no abort; one a failing server cannot abort now holds
            # only copies of stored bytes, for the bucket's lifecycle rule to expire.
            with contextlib.suppress(BotoCoreError, ClientError):
                self._objects.abort_upload(destination_key, upload_id)
            raise

    async def _delete(self, path: str) -> None:
        key, prefix = self._key(path), self._dir_prefix(path)

        def delete_all() -> bool:
            keys = self._existing(key)
            token: str | None = ""
            while token is not None:
                page = self._objects.list_page(prefix, token=token)
                keys += [item.key for item in page.objects]
                token = page.next_token
            self._delete_keys(path, keys)
            aborted = self._abort_uploads(prefix, older_than=None)
            return bool(keys) or aborted > 0

        if not await in_thread(path, delete_all):
            raise PathNotFound(path)

    async def _delete_many(self, paths: Sequence[str]) -> None:
        keys = [self._key(path) for path in paths]
        if keys:
            await in_thread(paths[0], lambda: self._delete_keys(paths[0], keys))

    def _delete_keys(self, path: str, keys: list[str]) -> None:
        """``DeleteObjects``, 1,000 keys a request; S3 counts a key already gone as deleted."""
        if len(keys) == 1:
            self._objects.delete(keys[0])  # a plain DELETE costs less than a batch of one
            return
        for start in range(0, len(keys), DELETE_BATCH):
            refused = self._bulk_objects.delete_keys(keys[start : start + DELETE_BATCH])
            if refused is not None:
                raise StorageError(path, f"S3 refused to delete {refused[0]}: {refused[1]}")

    def _existing(self, key: str) -> list[str]:
        """``[key]`` if an object is stored there, else ``[]``."""
        try:
            self._objects.head(key)
        except ClientError as exc:
            if status_code(exc) != 404:
                raise
            return []
        return [key]

    def _abort_uploads(self, prefix: str, older_than: float | None) -> int:
        """Abort multipart uploads below ``prefix`` started before ``older_than`` (all if None)."""
        aborted = 0
        for upload in self._objects.list_uploads(prefix):
            if older_than is not None and upload.initiated >= older_than:
                continue
            try:
                self._bulk_objects.abort_upload(upload.key, upload.upload_id)
            except ClientError as exc:
                if status_code(exc) != 404:  # aborted meanwhile by another replica
                    raise
            aborted += 1
        return aborted

    async def _purge_incomplete(self, path: str, older_than: float) -> int:
        cutoff = time.time() - older_than
        prefix = self._dir_prefix(path)
        return await in_thread(path, lambda: self._abort_uploads(prefix, cutoff))

    async def _redirect_url(self, path: str) -> str | None:
        key, expiry = self._key(path), int(self.redirect_expiry)
        if self._presigns.presigns_inline:
            return self._presigns.presign(key, expiry)  # tens of microseconds: less than a thread hop
        return await in_thread(path, lambda: self._presigns.presign(key, expiry))

    async def _walk(self, path: str) -> AsyncIterator[FileInfo]:
        prefix = self._dir_prefix(path)
        found = False
        token: str | None = ""
        while token is not None:
            page = await in_thread(path, partial(self._objects.list_page, prefix, token=token))
            for item in page.objects:
                found = True
                name = item.key.rpartition("/")[2]
                if name and not _is_hidden(name):
                    yield FileInfo(self._path_of(item.key), item.size, item.modified)
            token = page.next_token
        if not found:
            raise PathNotFound(path)

    async def close(self) -> None:
        for client in self._boto3_clients:
            await to_thread(client.close)
        await to_thread(self._objects.close)
        await to_thread(self._bulk_objects.close)
        if self._presigns is not self._objects:
            await to_thread(self._presigns.close)
