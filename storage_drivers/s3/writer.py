"""Appendable writes on S3: a multipart upload plus a small "pending" object for the tail.

S3 parts must be at least 5 MiB (except the last), but a registry upload arrives in
requests of any size, each possibly served by another worker or host. So the writer
keeps, durably and with nothing in process memory between requests:

- parts in an S3 multipart upload at the object's own key: ``chunksize`` bytes each as
  data arrives (5 MiB while many uploads at once fill the process's writers), and on
  ``close`` whatever is left if it is at least 5 MiB (S3 lets parts differ in size), and
- the bytes after the last part, fewer than 5 MiB, in a pending object beside the key
  (``<dir>/.dockyard-pending-<name>``), whose metadata records the upload id, how many
  parts it follows and at which offset.

``close`` rewrites the pending object (empty when it could upload a part); a later writer
reads it back and lists the upload's parts. So a chunked upload whose requests carry 5 MiB
or more never sends a byte to S3 twice. A part uploaded after the pending object was
written (a writer that died before ``close``, or during it) already contains that tail,
which the part count reveals, so the size is exact even after a crash. ``commit`` uploads
the tail as the last part and completes the upload (a single PUT when no part was needed).

Streamed requests. When the writer is told how many bytes a request brings (``expect``: the
request's Content-Length) and the endpoint takes signed requests (lean.py), nothing is held:
the bytes still to come are planned into pieces of known length, and each piece is one
request whose body is sent as the bytes arrive (signed.py's ``Outgoing``, payload unsigned):

- a part of ``chunksize`` bytes (or all that is left, when less than ``chunksize`` + 5 MiB,
  so that no piece under S3's minimum follows it), the stored tail streamed in first;
- what is left under 5 MiB at the end of a request that more requests follow: the new
  pending object (tail and new bytes), its metadata known before its first byte;
- the whole object, in one PUT, when the request finishes an upload with no parts and
  fewer than ``chunksize`` bytes in all.

A streamed piece cannot be sent again: its bytes are in no buffer. When one fails (or its
request ends before its bytes did), the request gives up the piece (S3 drops a request cut
short) and fails; what is stored is the parts and the pending object before it, so the upload
stays resumable at ``size`` (which no longer counts the lost bytes). A request of unknown length
(``Transfer-Encoding: chunked``) cannot be planned so: its bytes are gathered until a part is
full, as above, in a local spool file rather than in memory (spool.py), and each part, the
pending object and a single PUT are sent from that file in pieces (sent again on a transient
failure, since the bytes are still there).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..base import FileWriter, PathNotFound, StorageError
from .errors import in_thread, translate
from .lean import LeanObjects, ObjectCalls
from .listing import Part
from .settings import MAX_PART, MIB, MIN_PART, S3Settings
from .signed import Outgoing
from .spool import PIECE, Spool

PENDING_PREFIX = ".dockyard-pending-"
HIDDEN_PREFIX = ".dockyard-"
"""Names the driver keeps for itself; listings and walks never show them."""


BUFFERED_LIMIT = 20 * MIB
"""Bytes the writers of one process may have spooled before they upload parts of S3's minimum
size instead of ``chunksize``: many uploads at once would otherwise each keep up to a whole part
on local disk."""
_LIVE: weakref.WeakSet[S3Writer] = weakref.WeakSet()


def _part_size(chunksize: int) -> int:
    """The size of the next part a writer uploads: ``chunksize``, or S3's minimum while the
    process's writers have spooled more than BUFFERED_LIMIT."""
    return MIN_PART if sum(len(writer._spool) for writer in _LIVE) > BUFFERED_LIMIT else chunksize


def pending_key(key: str) -> str:
    directory, slash, name = key.rpartition("/")
    return f"{directory}{slash}{PENDING_PREFIX}{name}"


def _gapless(parts: list[Part]) -> list[Part]:
    """Parts numbered 1, 2, 3... up to the first gap (a lost part of an interrupted writer)."""
    run = []
    for number, part in enumerate(parts, 1):
        if part.number != number:
            break
        run.append(part)
    return run


@dataclass(frozen=True)
class WriterCalls:
    """What a writer calls S3 through (lean.py, or boto3 where that path does not apply)."""

    settings: S3Settings
    objects: ObjectCalls
    """Within the quick budget: the pending object's HEAD and DELETE, the check of a commit,
    starting the multipart upload and listing its parts."""
    bulk_objects: ObjectCalls
    """Within the bulk budget: the tail (up to 5 MiB) read and written, a single PUT, parts
    held in memory, completing and aborting the upload."""
    streams: LeanObjects | None = None
    """Within the bulk budget, where the endpoint takes them: requests streamed as bytes arrive."""


TAIL_PIECE = 256 << 10
"""Bytes of a stored tail read at a time while it is streamed into a part."""


@dataclass
class _Piece:
    """One streamed request under way: a part, the pending object or the whole object."""

    outgoing: Outgoing
    length: int
    number: int
    """The part's number; 0 for the pending object, -1 for the whole object."""
    tail: int
    """Bytes of the stored tail it carries before the new ones."""


class S3Writer(FileWriter):
    def __init__(self, calls: WriterCalls, path: str, key: str) -> None:
        self._objects, self._bulk_objects = calls.objects, calls.bulk_objects
        self._settings = calls.settings
        self._path = path
        self._key = key
        self._pending_key = pending_key(key)
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str]] = []
        """(number, ETag) of the parts uploaded, in order."""
        self._parts_size = 0
        self._spool = Spool()
        """Bytes of unannounced length not yet in a part (the stored tail first, once read)."""
        self._unloaded_tail = 0
        """Bytes of the pending object not read back yet (read on the first write or commit)."""
        self._tail_etag: str | None = None
        self._dirty = True
        self._closed = False
        self._streams = calls.streams
        self._expected: int | None = None
        """Bytes the request still brings, when ``expect`` told (and writes are streamed)."""
        self._final = False
        self._piece: _Piece | None = None
        self._sent = 0
        """New bytes sent in the piece under way (its tail is still counted as the tail)."""
        self._stored_whole = False
        self._pending_stored = True
        """Whether a pending object may be stored (unknown, so true, until ``resume`` looked)."""
        _LIVE.add(self)

    @classmethod
    async def resume(cls, calls: WriterCalls, path: str, key: str) -> S3Writer:
        """Continue what a closed (not committed or cancelled) writer left at ``key``, or start empty."""
        writer = cls(calls, path, key)
        await writer._load_state()
        return writer

    async def _load_state(self) -> None:
        try:
            head = await in_thread(self._path, lambda: self._objects.head(self._pending_key))
        except PathNotFound:
            self._dirty = False  # nothing to continue, nothing to persist yet
            self._pending_stored = False
            return
        upload_id = head.metadata.get("upload-id") or None
        recorded_parts = int(head.metadata.get("parts", "0"))
        recorded_offset = int(head.metadata.get("offset", "0"))
        self._tail_etag = head.etag
        self._unloaded_tail = head.size
        self._dirty = False
        if upload_id is None:
            return
        self._upload_id = upload_id
        try:
            parts = await in_thread(self._path, lambda: self._objects.list_parts(self._key, upload_id))
        except PathNotFound:
            # Purged, or completed by a commit whose answer was lost: nothing left to continue.
            raise PathNotFound(self._path, "the pending upload was aborted or completed") from None
        # Only a gapless run of parts counts; complete_multipart_upload drops the others.
        contiguous = _gapless(parts)
        if len(contiguous) < recorded_parts or (
            sum(part.size for part in contiguous[:recorded_parts]) != recorded_offset
        ):
            raise StorageError(self._path, "the upload's parts do not match its pending state")
        if len(contiguous) > recorded_parts:
            # A writer uploaded a part after this tail and died before close: the part holds it.
            self._unloaded_tail = 0
            self._dirty = True
        self._parts = [(part.number, part.etag) for part in contiguous]
        self._parts_size = sum(part.size for part in contiguous)

    @property
    def size(self) -> int:
        return self._parts_size + self._unloaded_tail + len(self._spool) + self._sent

    def expect(self, length: int, final: bool) -> None:
        if self._streams is not None and not self._spool and self._piece is None:
            self._expected, self._final = length, final

    def blocking_write(self) -> Callable[[memoryview], None] | None:
        return self._stream if self._expected is not None else None

    def _stream(self, data: memoryview) -> None:
        """Send ``data`` on in the pieces planned for the expected bytes (in a worker thread)."""
        self._require_open()
        expected = self._expected
        assert expected is not None  # only offered after expect
        if len(data) > expected:
            raise StorageError(self._path, f"{len(data)} bytes written where {expected} were announced")
        streams = self._streams
        assert streams is not None
        try:
            while data:
                piece = self._piece or self._open_piece()
                count = min(len(data), piece.outgoing.left)
                streams.send(piece.outgoing, data[:count])
                self._sent += count
                self._expected = expected = expected - count
                data = data[count:]
                if not piece.outgoing.left:
                    self._finish_piece(piece)
        except BaseException as exc:
            self._drop_piece()
            if isinstance(exc, (BotoCoreError, ClientError)):
                raise translate(self._path, exc) from exc
            raise

    def _open_piece(self) -> _Piece:
        streams = self._streams
        assert streams is not None
        assert self._expected is not None
        tail = self._unloaded_tail
        available = tail + self._expected
        chunk = self._settings.chunksize
        if self._upload_id is None and self._final and available < chunk:
            outgoing = streams.start_put(self._key, available, self._settings.put_arguments())
            piece = _Piece(outgoing, available, -1, tail)
        elif available >= MIN_PART or (self._final and self._upload_id is not None):
            # All that is left, rather than a part of chunksize followed by one too small.
            length = available if available < chunk + MIN_PART and available <= MAX_PART else chunk
            if self._upload_id is None:
                self._upload_id = self._objects.create_upload(self._key, self._settings.put_arguments())
            number = len(self._parts) + 1
            outgoing = streams.start_part(self._key, self._upload_id, number, length)
            piece = _Piece(outgoing, length, number, tail)
        else:
            arguments = {"ContentType": "application/octet-stream", "Metadata": self._state_metadata()}
            piece = _Piece(streams.start_put(self._pending_key, available, arguments), available, 0, tail)
        self._piece = piece
        if tail:
            self._send_tail(piece)
        return piece

    def _send_tail(self, piece: _Piece) -> None:
        streams = self._streams
        assert streams is not None
        stream, _, _ = self._bulk_objects.open(self._pending_key, 0, None, self._tail_etag or "")
        new_bytes = piece.length - piece.tail
        try:
            while (left := piece.outgoing.left - new_bytes) > 0:
                streams.send(piece.outgoing, stream.read(min(TAIL_PIECE, left)))
        finally:
            stream.close()

    def _finish_piece(self, piece: _Piece) -> None:
        assert self._streams is not None
        answer = self._streams.finished(piece.outgoing)
        self._piece, self._sent = None, 0
        if piece.number > 0:
            self._parts.append((piece.number, answer.headers["ETag"]))
            self._parts_size += piece.length
            self._unloaded_tail = 0
            self._dirty = True  # the pending object still records the parts before this one
        elif piece.number == 0:
            self._unloaded_tail = piece.length
            self._tail_etag = answer.headers["ETag"]
            self._dirty = False
            self._pending_stored = True
        else:
            self._parts_size, self._unloaded_tail = piece.length, 0
            self._stored_whole = True

    def _drop_piece(self) -> None:
        """Give up the piece under way: its new bytes are lost, the stored tail stays as it was."""
        piece, self._piece = self._piece, None
        if piece is not None:
            piece.outgoing.abandon()
            self._sent = 0

    def _state_metadata(self) -> dict[str, str]:
        return {
            "upload-id": self._upload_id or "",
            "parts": str(len(self._parts)),
            "offset": str(self._parts_size),
        }

    def _require_open(self) -> None:
        if self._closed:
            raise StorageError(self._path, "writer already closed")

    async def _load_tail(self) -> None:
        if self._unloaded_tail:
            await in_thread(self._path, self._load_tail_now, bulk=True)

    def _load_tail_now(self) -> None:
        """Read the stored tail into the empty spool (blocking): the bytes before any new one."""
        assert not self._spool
        tail = self._bulk_objects.get(self._pending_key, self._tail_etag or "")
        if len(tail) != self._unloaded_tail:
            raise StorageError(self._path, "the pending tail changed while it was read")
        self._spool.append(tail)
        self._unloaded_tail = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._require_open()
        view = memoryview(data)
        if self._expected is not None:
            await in_thread(self._path, lambda: self._stream(view), bulk=True)
            return

        def gather() -> None:  # spooled, and the parts it fills sent, in one thread hop
            if self._unloaded_tail:
                self._load_tail_now()
            self._spool.append(view)
            self._dirty = True
            while len(self._spool) >= (part := _part_size(self._settings.chunksize)):
                self._upload_part_now(part)

        await in_thread(self._path, gather, bulk=True)

    async def _upload_part(self, length: int) -> None:
        await in_thread(self._path, lambda: self._upload_part_now(length), bulk=True)

    def _upload_part_now(self, length: int) -> None:
        """Upload the spool's first ``length`` bytes as the next part (blocking); a failed part
        leaves them spooled, to retry or persist."""
        if self._upload_id is None:
            self._upload_id = self._objects.create_upload(self._key, self._settings.put_arguments())
        upload_id, number = self._upload_id, len(self._parts) + 1
        streams, spool = self._streams, self._spool
        if streams is None:
            etag = self._bulk_objects.upload_part(self._key, upload_id, number, spool.read(length))
        else:
            answer = streams.send_again(
                lambda: streams.start_part(self._key, upload_id, number, length), lambda: spool.pieces(length)
            )
            etag = answer.headers["ETag"]
        spool.drop(length)
        self._parts.append((number, etag))
        self._parts_size += length

    def _put_spooled(self, key: str, arguments: Mapping[str, Any]) -> None:
        """Store the spool's bytes at ``key`` (blocking): streamed from the file unless small
        (a small PUT goes on a kept-alive connection, in one segment)."""
        streams, spool, length = self._streams, self._spool, len(self._spool)
        if streams is None or length <= PIECE:
            self._bulk_objects.put(key, spool.read(length), arguments)
        else:
            streams.send_again(
                lambda: streams.start_put(key, length, arguments), lambda: spool.pieces(length)
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_piece()  # the request ended (or failed) inside a streamed piece
        if self._stored_whole:
            # Every byte is at the key already: a later writer finds the upload sealed.
            await self._delete_pending()
            return
        if not self._dirty:
            return

        def store() -> None:
            if self._unloaded_tail:
                self._load_tail_now()
            if len(self._spool) >= MIN_PART:
                # A part now rather than a tail the next request would read back and write again.
                self._upload_part_now(len(self._spool))
            metadata = self._state_metadata()
            self._put_spooled(
                self._pending_key, {"ContentType": "application/octet-stream", "Metadata": metadata}
            )
            self._pending_stored = True
            # Stored now: ``size`` still counts those bytes, from the pending object.
            self._unloaded_tail = len(self._spool)
            self._spool.close()

        try:
            await in_thread(self._path, store, bulk=True)
        finally:
            self._spool.close()

    async def commit(self) -> None:
        self._require_open()
        if self._piece is not None or self._expected:
            raise StorageError(self._path, "the request ended before the bytes it announced")
        if self._stored_whole:
            self._closed = True
            await self._delete_pending()
            return
        arguments = self._settings.put_arguments()
        if self._upload_id is None and self._unloaded_tail and not self._spool:
            # Every byte is in the pending object read by resume: S3 copies that very version
            # into place, where reading it back and writing it again takes two requests.
            source, etag = self._pending_key, self._tail_etag or ""

            def copy_into_place() -> None:  # and delete the pending object, in one thread hop
                self._bulk_objects.copy(source, self._key, arguments, etag)
                self._closed = True
                self._objects.delete(source)

            await in_thread(self._path, copy_into_place)
            return
        if self._upload_id is not None and self._unloaded_tail and not self._spool:
            # The tail becomes the last part by a copy on the server, not read back and sent.
            await in_thread(self._path, self._copy_tail_as_part)
        await self._load_tail()
        size = self.size
        if self._upload_id is None:
            # One PUT stores all its bytes or none: nothing to check after it.
            await in_thread(self._path, lambda: self._put_spooled(self._key, arguments), bulk=True)
            self._closed = True
            self._spool.close()
        else:
            if self._spool:
                await self._upload_part(len(self._spool))
            self._spool.close()
            upload_id, parts = self._upload_id, list(self._parts)
            await in_thread(
                self._path, lambda: self._bulk_objects.complete_upload(self._key, upload_id, parts)
            )
            self._closed = True
            # Completing drops parts it was not given: the object must hold every byte written.
            stored = await in_thread(self._path, lambda: self._objects.head(self._key))
            if stored.size != size:
                raise StorageError(self._path, f"stored {stored.size} bytes, wrote {size}")
        await self._delete_pending()

    def _copy_tail_as_part(self) -> None:
        assert self._upload_id is not None
        number = len(self._parts) + 1
        etag = self._bulk_objects.copy_part(
            self._pending_key, self._key, self._upload_id, number, if_match=self._tail_etag or "*"
        )
        self._parts.append((number, etag))
        self._parts_size += self._unloaded_tail
        self._unloaded_tail = 0

    async def cancel(self) -> None:
        self._closed = True
        self._drop_piece()
        self._spool.close()
        if self._upload_id is not None:
            upload_id = self._upload_id
            with contextlib.suppress(PathNotFound):  # already aborted, e.g. by upload purging
                await in_thread(self._path, lambda: self._bulk_objects.abort_upload(self._key, upload_id))
        await self._delete_pending()

    async def _delete_pending(self) -> None:
        if self._pending_stored:
            await in_thread(self._path, lambda: self._objects.delete(self._pending_key))
            self._pending_stored = False
