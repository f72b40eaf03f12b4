"""The storage driver contract: bytes at paths, nothing more.

A driver knows nothing about blobs, manifests or repositories; the registry's
storage layer (``registry.storage``) gives those meaning. Every public method
here validates its path once and then calls the driver's ``_``-prefixed
implementation, so each driver only implements the underscore methods and
translates its own exceptions into the typed errors below.

Paths are absolute, ``/``-separated and made of ``[A-Za-z0-9._-]`` components
(the same rule CNCF Distribution applies), so a path can never climb out of the
driver's root.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

_PATH = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._-]+)+")
"""Absolute, "/"-separated components of [A-Za-z0-9._-], none of them "." or ".."."""


class StorageError(Exception):
    """Base of every error a driver raises."""

    def __init__(self, path: str, detail: str = "") -> None:
        super().__init__(f"{path}: {detail}" if detail else path)
        self.path = path
        self.detail = detail


class PathNotFound(StorageError):
    """Nothing is stored at the path."""


class InvalidPath(StorageError):
    """The path breaks the path grammar (or names a directory where a file is expected)."""


class InvalidOffset(StorageError):
    """A read or append asked for an offset the stored object does not have."""


class StorageUnavailable(StorageError):
    """The backend failed in a way that may pass (timeouts, throttling, a server that is down)."""


class StorageFull(StorageError):
    """The backend has no room for the write (a full disk, a quota): it may pass once an operator
    frees space. Whatever the failed call had written before stays as ``size`` reports it."""


class StorageReadOnly(StorageError):
    """The backend refuses every write (a read-only mount, a bucket policy denying writes)."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    modified: float
    """Seconds since the epoch."""
    is_dir: bool = False


def check_path(path: str) -> str:
    if not _PATH.fullmatch(path):
        raise InvalidPath(path, "not a valid storage path")
    return path


def listing_bound(after: str) -> str:
    """A printable-ASCII string that path components sort after exactly when they sort after
    ``after``, so backends only get strings they take as keys (S3's ``StartAfter``).

    Components are made of characters from "-" to "z", so the first character outside printable
    ASCII decides every comparison that reaches it: one below " " puts ``after`` before every
    longer component with the same start, as the start alone does; one above "~" puts it after
    them, as the start followed by "~" does.
    """
    for index, character in enumerate(after):
        if not " " <= character <= "~":
            return after[:index] if character < " " else after[:index] + "~"
    return after


class FileWriter(ABC):
    """Appends bytes to one path; nothing is readable there before ``commit``.

    A writer opened with ``append=True`` continues what an earlier writer, in
    this or any other process, ``close``d (and did not commit or cancel); with
    no such writer it starts empty. Committed content is final: it is never
    continued, only replaced by the next commit. So the size of an unfinished
    upload is ``(await driver.writer(path, append=True)).size``, never ``stat``.
    """

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes written so far, including those of earlier writers."""

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; callers pass large buffers (the registry: 0.5 to 4 MiB, page-aligned)
        and reuse them once this returns, so a driver that keeps bytes for later must copy them."""

    def expect(self, length: int, final: bool) -> None:  # noqa: B027 - most drivers need no plan
        """Say that the next writes bring exactly ``length`` bytes in all, and that ``commit``
        (``final``) or ``close`` follows them; called before those writes, if at all. A driver
        may plan on it (S3 streams parts of known length rather than holding them). Should the
        writes end early, ``close`` still keeps a prefix of what they brought (``size`` says
        how much), and ``commit`` may refuse."""

    def blocking_write(self) -> Callable[[memoryview], None] | None:
        """A function that does what ``write`` does, called in a worker thread instead of awaited
        (for a caller that keeps one thread writing batch after batch); calls never overlap, and
        ``close``, ``commit`` and ``cancel`` come only after the last one returned. ``None``, the
        default, where a driver's writes are asynchronous only."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Persist what was written so that a later writer can append to it."""

    @abstractmethod
    async def commit(self) -> None:
        """Make the whole content durable and readable at the path; closes the writer."""

    @abstractmethod
    async def cancel(self) -> None:
        """Discard everything written; closes the writer."""


class StorageDriver(ABC):
    """Bytes at paths. Implement the ``_`` methods; the public ones check paths.

    The ``*_many`` methods serve walks over the whole store (garbage collection): a driver
    answers a batch in as few calls as it can (the filesystem: one thread hop; S3: one
    ``DeleteObjects`` per 1,000 keys); the defaults loop over the single-path methods.
    """

    name: ClassVar[str]
    listing_carries_stats: bool = False
    """Whether ``walk`` gets sizes and times from the listing itself (S3), so that walking a
    tree costs no more than listing its names; on a filesystem every file is a stat."""
    lists_in_forks: bool = False
    """Whether a forked child of the process can list and stat the same storage on its own (a
    local filesystem), so that a scan of the whole store can be split among processes."""
    upload_memory: tuple[int, int] | None = None
    """(bytes, smallest batch): what the batches of all the uploads arriving at one worker may
    hold, for a driver whose writes need less than the registry's default, which is sized for
    large direct writes to disk. A driver that sends each batch on to a socket gains only fewer
    thread hops from larger ones. None: the default."""
    batches_in_flight: int = 32
    """How many ``*_many`` calls and walks a pass over the whole store keeps in flight: enough
    to overlap remote round trips (S3). A local filesystem answers from the CPU, so more calls
    than cores only hand the interpreter's lock between threads."""

    async def get_content(self, path: str) -> bytes:
        """The whole content of a small object."""
        return await self._get_content(check_path(path))

    async def put_content(self, path: str, data: bytes) -> None:
        """Store a small object, atomically replacing any previous content. The object and any
        directories it creates appear at once: a crash leaves neither a torn object nor an empty
        directory."""
        await self._put_content(check_path(path), data)

    async def put_content_unsynced(self, path: str, data: bytes, *, like: str | None = None) -> None:
        """Store a small object as ``put_content`` does, whole or not at all, but without waiting
        until its appearance survives a crash of the machine: it does once a later
        ``put_content`` or ``put_contents`` has returned (a journaling filesystem commits its
        changes in order, so the later write's sync commits this one too; an object store keeps
        every write). For an object that matters only through a later write: a mount's link,
        which a pull finds only through the manifest pushed after it.

        ``like``: a stored object that holds ``data`` and is only ever replaced whole or
        rewritten with the same bytes (another repository's link to the same digest). A driver
        may give ``path`` its content instead of writing ``data`` (the filesystem: a hard link)."""
        await self._put_content_unsynced(check_path(path), data, None if like is None else check_path(like))

    async def put_contents(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store small objects as ``put_content`` does, each visible only after those before it:
        a reader, or what a crash leaves, sees a prefix of them in order, never one without the
        ones before it. A driver may write them at once and wait for the disk once."""
        await self._put_contents([(check_path(path), data) for path, data in items])

    creates_exclusively: bool = False
    """Whether ``create_content`` can store an object only where none is, as one atomic step."""

    deletes_exactly: bool = False
    """Whether ``delete`` of one object is one atomic step, as cheap as ``delete_many`` of it:
    of concurrent deletes of it, in any workers, exactly one succeeds, the others raise
    PathNotFound. (S3 answers a DELETE alike whether the object was there or not.)"""

    async def create_content(self, path: str, data: bytes) -> bool:
        """Store a small object as ``put_content`` does, but only if nothing is stored at ``path``:
        False, and nothing changed, when something is. Of any number of concurrent calls for one
        path, in any workers or hosts, exactly one stores. Only drivers that say
        ``creates_exclusively``; others raise NotImplementedError."""
        return await self._create_content(check_path(path), data)

    async def put_many(self, items: Sequence[tuple[str, bytes]], *, durable: bool = True) -> None:
        """Store small objects as ``put_content`` does, in no particular order: a crash may keep
        any of them. ``durable=False`` lets the driver skip waiting for the disk: a crash of the
        machine may then lose objects it wrote, keep them empty, or leave the directories made
        for them. For records that such a crash makes meaningless anyway (garbage collection's
        markers, void once their run is gone)."""
        await self._put_many([(check_path(path), data) for path, data in items], durable)

    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (to the end when None) from ``offset``, in large chunks (bytes,
        or memoryviews a driver can hand out without copying).

        Raises PathNotFound or InvalidOffset before the first chunk is yielded.
        """
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(path, f"offset {offset} length {length}")
        return self._reader(check_path(path), offset, length)

    reads_are_round_trips: bool = False
    """Whether each read is a round trip to another host (S3): a caller that needs several reads
    sends them at once, and opens a stream with ``sized_reader``, whose answer carries the
    object's size. On a local filesystem a read answers from the CPU and the page cache: reads
    in sequence cost less than tasks to run them side by side."""

    async def sized_reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> tuple[int, AsyncIterator[bytes]]:
        """The object's size, and its bytes as ``reader`` streams them, the read opened by now:
        where ``reads_are_round_trips``, one request answers both. PathNotFound or InvalidOffset
        (``offset`` beyond the end) are raised here. The caller reads the stream to its end or
        closes it (``aclose``), even before its first chunk: an unread stream may hold a
        connection."""
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(path, f"offset {offset} length {length}")
        return await self._sized_reader(check_path(path), offset, length)

    unfinished_reads: bool = False
    """Whether ``unfinished_reader`` can read what a writer has written before its commit."""

    def unfinished_reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream what the writer of ``path`` has written so far and not yet committed or
        cancelled: ``length`` bytes at most (all there are when None) from ``offset``, as ``reader``
        does. Only drivers that say ``unfinished_reads``; others raise NotImplementedError.

        For a reader in another worker or host following a writer while it writes (the pull-through
        cache): the bytes are neither durable nor final, and the stream ends where the writer had
        got when it began. Raises PathNotFound before the first chunk when no writer of ``path``
        holds bytes (none opened, or committed, or cancelled), InvalidOffset beyond what it wrote.
        """
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(path, f"offset {offset} length {length}")
        return self._unfinished_reader(check_path(path), offset, length)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer for ``path``: a fresh one, or (``append``) one continuing a closed writer.

        Appending raises PathNotFound when what it would continue is gone, where a driver keeps
        it outside the path (S3: a multipart upload aborted, or completed by a commit).
        """
        return await self._writer(check_path(path), append)

    async def stat(self, path: str) -> FileInfo:
        return await self._stat(check_path(path))

    async def file_size(self, path: str) -> int | None:
        """The size of the object at ``path``; None when there is none (nothing, or a directory).
        Cheaper than ``stat`` for a miss where a driver looks for a directory apart (S3)."""
        return await self._file_size(check_path(path))

    async def list(self, path: str, after: str | None = None, limit: int | None = None) -> list[str]:
        """Full paths of the direct children of a directory, in lexical order of their names.

        Only children whose name sorts after ``after`` (any string) are listed, and at most
        ``limit`` of them: fewer only when no more follow. Drivers make a page cost the same
        whatever the directory's size, so callers walk large directories page by page. A directory exists
        while anything is stored below it; PathNotFound when nothing is, even with ``after``.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"a listing limit must be positive, not {limit}")
        bound = None if after is None else listing_bound(after)
        return await self._list(check_path(path), bound, limit)

    async def scan(self, path: str, after: str = "", limit: int = 1000) -> builtins.list[str] | None:
        """Full paths of the objects (not directories) below ``path`` at any depth, in byte order
        of the path, from the first whose path relative to ``path`` sorts after ``after`` (any
        string), at most ``limit``: fewer only when no more follow; [] when none do.

        For a store of keys, where one call reads a page of keys whatever their depth (S3's
        ListObjectsV2 without a delimiter), and callers that would otherwise list one directory
        per call. None when the driver has no such listing (the filesystem would walk its
        directories to make one): callers then walk with ``list``.
        """
        if limit < 1:
            raise ValueError(f"a scan limit must be positive, not {limit}")
        return await self._scan(check_path(path), listing_bound(after), limit)

    async def move(self, source: str, destination: str, size: int | None = None) -> None:
        """Atomically move an object, replacing whatever is at ``destination``. ``size``: the
        source's size, when the caller knows it (S3 then copies without asking for it)."""
        await self._move(check_path(source), check_path(destination), size)

    async def delete(self, path: str) -> None:
        """Delete an object, or a directory and everything below it. A directory an object
        leaves empty goes with it, as with ``delete_many``."""
        await self._delete(check_path(path))

    async def redirect_url(self, path: str) -> str | None:
        """A URL a client can fetch the object from directly, or None to stream it.

        It does not check that the object exists (callers have just stat-ed it), and it
        answers GET only; whether to redirect at all is the registry's decision.
        """
        return await self._redirect_url(check_path(path))

    async def open_local(self, path: str) -> int | None:
        """A read-only file descriptor of the object, when it is a file of this machine (the
        caller closes it), for a server to send without reading it; None when the storage is
        elsewhere. PathNotFound when it does not exist."""
        return await self._open_local(check_path(path))

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every object (not directory) below ``path``, in no particular order. A listing that
        fails raises, however far the walk got: garbage collection must never read a partial
        walk as "nothing more there"."""
        return self._walk(check_path(path))

    async def purge_incomplete(self, path: str, older_than: float) -> int:
        """Discard what writers below ``path`` left unfinished more than ``older_than`` seconds ago.

        For state a driver keeps outside the paths it stores (S3's multipart uploads, which
        deleting the upload's directory does not find once the directory is gone); returns
        how many it discarded. Upload purging calls it after deleting old upload directories.
        """
        return await self._purge_incomplete(check_path(path), older_than)

    async def list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        """``list`` of each directory whole, in order; None where nothing is stored below."""
        for path in paths:
            check_path(path)
        return await self._list_many(paths)

    async def stat_many(self, paths: Sequence[str]) -> builtins.list[FileInfo | None]:
        """``stat`` of each path, in order; None where nothing is stored."""
        for path in paths:
            check_path(path)
        return await self._stat_many(paths)

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        """``get_content`` of each small object, in order; None where nothing is stored."""
        for path in paths:
            check_path(path)
        return await self._get_many(paths)

    async def delete_many(self, paths: Sequence[str]) -> None:
        """Delete the objects (not directories) at ``paths``; those already gone are skipped.
        A directory an object leaves empty goes with it, as on S3 where directories are only
        key prefixes. Not atomic: when it raises, any of the objects may be gone or not."""
        for path in paths:
            check_path(path)
        await self._delete_many(paths)

    async def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release connections and threads."""

    @abstractmethod
    async def _get_content(self, path: str) -> bytes: ...

    @abstractmethod
    async def _put_content(self, path: str, data: bytes) -> None: ...

    async def _put_content_unsynced(self, path: str, data: bytes, like: str | None) -> None:
        await self._put_content(path, data)

    async def _put_contents(self, items: Sequence[tuple[str, bytes]]) -> None:
        for path, data in items:  # one after another: each is visible before the next is written
            await self._put_content(path, data)

    async def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> None:
        for path, data in items:
            await self._put_content(path, data)

    @abstractmethod
    def _reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def _writer(self, path: str, append: bool) -> FileWriter: ...

    @abstractmethod
    async def _stat(self, path: str) -> FileInfo: ...

    @abstractmethod
    async def _list(  # the method shadows list
        self, path: str, after: str | None, limit: int | None
    ) -> builtins.list[str]:
        """``after`` is printable ASCII (see ``listing_bound``)."""

    @abstractmethod
    async def _move(self, source: str, destination: str, size: int | None) -> None: ...

    @abstractmethod
    async def _delete(self, path: str) -> None: ...

    async def _redirect_url(self, path: str) -> str | None:
        return None

    async def _sized_reader(
        self, path: str, offset: int, length: int | None
    ) -> tuple[int, AsyncIterator[bytes]]:
        size = await self._file_size(path)
        if size is None:
            raise PathNotFound(path)
        if offset > size:
            raise InvalidOffset(path, f"offset {offset} beyond the end")
        return size, self._reader(path, offset, length)  # nothing is open before its first chunk

    async def _open_local(self, path: str) -> int | None:
        return None

    def _unfinished_reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        raise NotImplementedError(f"the {self.name} driver cannot read unfinished writes")

    async def _create_content(self, path: str, data: bytes) -> bool:
        raise NotImplementedError(f"the {self.name} driver cannot create objects exclusively")

    async def _scan(self, path: str, after: str, limit: int) -> builtins.list[str] | None:
        """``after`` is printable ASCII (see ``listing_bound``)."""
        return None

    async def _purge_incomplete(self, path: str, older_than: float) -> int:
        return 0  # nothing outside the stored paths: deleting an upload's directory cleans up

    @abstractmethod
    def _walk(self, path: str) -> AsyncIterator[FileInfo]: ...

    async def _list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        found: builtins.list[builtins.list[str] | None] = []
        for path in paths:
            try:
                found.append(await self._list(path, None, None))
            except PathNotFound:
                found.append(None)
        return found

    async def _file_size(self, path: str) -> int | None:
        try:
            info = await self._stat(path)
        except PathNotFound:
            return None
        return None if info.is_dir else info.size

    async def _stat_many(self, paths: Sequence[str]) -> builtins.list[FileInfo | None]:
        found: builtins.list[FileInfo | None] = []
        for path in paths:
            try:
                found.append(await self._stat(path))
            except PathNotFound:
                found.append(None)
        return found

    async def _get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        found: builtins.list[bytes | None] = []
        for path in paths:
            try:
                found.append(await self._get_content(path))
            except PathNotFound:
                found.append(None)
        return found

    async def _delete_many(self, paths: Sequence[str]) -> None:
        for path in paths:
            with contextlib.suppress(PathNotFound):
                await self._delete(path)
