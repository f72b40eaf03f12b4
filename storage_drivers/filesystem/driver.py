"""Local filesystem driver: a path maps to a file below ``rootdirectory``.

Small objects are replaced whole (``staging``), so a reader (or a crash) sees the old content or
the new one, never a torn one. Large reads and writes go to worker threads in large batches; a
stat or the read of a tiny file stays on the event loop, where it costs less than the thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import mmap
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from offload import to_bulk_thread, to_thread

from .. import listings
from ..base import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver
from ..config import DriverConfigError, Parameters
from .errors import in_thread, translate
from .paging import populate
from .staging import (
    TEMP_PREFIX,
    Staged,
    create_empty,
    discard,
    make_directories,
    missing_top,
    place_in_order,
    stage,
    stage_together,
    sync_directory,
    write_atomically,
)
from .writer import FilesystemWriter, pending_file

_T = TypeVar("_T")
Group = tuple[str, str | None, list[tuple[str, bytes]]]
"""Objects staged together: (the first one's path, the highest missing directory or None, each
object's full path and content)."""
SMALL_FILE = 256 << 10
"""Files up to this size are read on the event loop: a page-cache read is cheaper than a thread hop."""
INLINE_ENTRIES = 1024
"""Directory entries read on the event loop before the rest of a listing moves to a thread: a
repository's directory holds a handful, and reading a thousand takes a fraction of a millisecond."""
MAP_CHUNK = 8 << 20
"""Bytes of a mapped blob handed to the sender at a time. Each window costs a worker thread's
turn and a pass through the server's send path: over TCP (where the bytes are copied to the
socket, not sent from the file) 8 MiB windows spend about 15% less of the registry's CPU per GiB
than 4 MiB ones (``bench/TLS.md``), for 8 MiB more mapped per download in flight (two windows)."""
DELETE_SWEEPS = 20
"""Passes over a renamed tree being deleted (see ``_delete``)."""
PARTS = 4
"""Thread calls a batch of creates or deletes is split into (see ``_in_parts``)."""
PART_MIN = 64
"""Fewer items than this are not split further: a thread hop costs about as much as a few."""
WALK_BATCH = 1000
"""Files a walk collects in a worker thread before handing them to the event loop."""


class FilesystemDriver(StorageDriver):
    name = "filesystem"
    batches_in_flight = 2
    lists_in_forks = True

    def __init__(self, rootdirectory: str) -> None:
        self.root = os.path.abspath(rootdirectory)
        self._listings = listings.DirectoryListings()

    @classmethod
    def from_parameters(cls, parameters: Parameters) -> FilesystemDriver:
        root = parameters.get("rootdirectory", "/var/lib/registry")
        problems = []
        if not isinstance(root, str) or not root:
            problems.append("storage.filesystem.rootdirectory must be a non-empty path")
        unknown = sorted(set(parameters) - {"rootdirectory", "maxthreads"})
        if unknown:
            problems.append(f"storage.filesystem: unknown parameters {', '.join(unknown)}")
        if problems:
            raise DriverConfigError(problems)
        return cls(str(root))

    def _full(self, path: str) -> str:
        return self.root + path

    async def _get_content(self, path: str) -> bytes:
        full = self._full(path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise translate(path, exc) from exc
        try:
            size = os.fstat(fd).st_size
            if size <= SMALL_FILE:
                return _read_fd(fd, size)
            return await in_thread(path, lambda: _read_fd(fd, size))
        except OSError as exc:
            raise translate(path, exc) from exc
        finally:
            os.close(fd)

    async def _put_content(self, path: str, data: bytes) -> None:
        def put() -> None:
            # Synced before the answer: the rename must survive a power loss, not only the bytes.
            sync_directory(write_atomically(self.root, self._full(path), data))

        await in_thread(path, put)

    async def _put_content_unsynced(self, path: str, data: bytes, like: str | None) -> None:
        # The content is on disk before it appears (never an empty link after a crash): synced,
        # or ``like``'s, already on disk, shared by a hard link (see ``stage``). The rename is
        # made durable by the next sync of the filesystem's journal. The file's sync is its
        # alone, not its new directories' too (see ``stage``): they are not synced now.
        full, source = self._full(path), None if like is None else self._full(like)
        await in_thread(path, lambda: write_atomically(self.root, full, data, anonymous=True, like=source))

    creates_exclusively = True
    deletes_exactly = True  # unlink

    async def _create_content(self, path: str, data: bytes) -> bool:
        def create() -> bool:
            try:
                changed = write_atomically(self.root, self._full(path), data, exclusive=True)
            except FileExistsError:
                return False
            sync_directory(changed)
            return True

        return await in_thread(path, create)

    async def _put_contents(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Every object written and synced (several groups of them at the same time, in threads
        of their own: syncs that overlap share the disk's journal commits), then renamed into
        place in order (see ``place_in_order``): one or two waits for the disk instead of one
        per object."""
        if not items:
            return
        path = items[0][0]
        contents = [data for _, data in items]
        # Grouping looks up which directories are missing. Where the first object's directory
        # exists, that is a few lookups that succeed, cheaper here than a thread hop; where it is
        # missing (a new repository's manifest), the lookups fail, each waiting on directory
        # locks, so the writing thread makes them.
        first_exists = os.path.isdir(os.path.dirname(self._full(path)))  # noqa: ASYNC240 - one lookup
        groups = self._groups(items, first_exists) if first_exists else None

        def stage_group(top: str | None, group: list[tuple[str, bytes]]) -> list[Staged]:
            if top is None or len(group) == 1:
                return [stage(self.root, full, data) for full, data in group]
            return stage_together(self.root, top, group)

        def place(written: list[Staged]) -> list[str]:
            changed = place_in_order(self.root, written, contents)
            if len(changed) == 1:  # one wait for the disk either way: no second trip to a thread
                sync_directory(changed[0])
                return []
            return changed

        def write_one_group() -> tuple[list[str], list[Group]]:
            # One group (a lone link; a new tree) has no writes to overlap: staged, placed and
            # synced in this one call. Several are handed back, to be written in parallel.
            found = groups if groups is not None else self._groups(items, False)
            if len(found) > 1:
                return [], found
            _, top, group = found[0]
            return place(stage_group(top, group)), []

        unsynced: list[str] = []
        several = groups if groups is not None and len(groups) > 1 else None
        if several is None:
            unsynced, several = await in_thread(path, write_one_group)
        if several:
            staged = await asyncio.gather(
                *(
                    in_thread(first, functools.partial(stage_group, top, group))
                    for first, top, group in several
                ),
                return_exceptions=True,
            )
            written = [item for group in staged if isinstance(group, list) for item in group]
            for failure in staged:
                if isinstance(failure, BaseException):
                    discard(written)
                    raise failure
            unsynced = await in_thread(path, functools.partial(place, written))
        # Every directory that gained an entry is synced before the caller answers. Each sync
        # waits for the disk (a cache flush even when the journal holds nothing new, as on ext4
        # when the first sync has committed the renames): the waits overlap, in threads of their
        # own, rather than add up.
        await asyncio.gather(*(in_thread(path, functools.partial(sync_directory, d)) for d in unsynced))

    def _groups(self, items: Sequence[tuple[str, bytes]], first_exists: bool) -> list[Group]:
        """Consecutive objects whose directories are missing below the same directory, together
        (a new repository's manifest: its revision and tag links), each group as (first path,
        the highest missing directory or None, its objects): a few lookups, none for an object
        below the missing directory found for the one before it; one fewer for the first object,
        whose directory was looked up already (``first_exists``)."""
        groups: list[Group] = []
        for path, data in items:
            full = self._full(path)
            last_top = groups[-1][1] if groups else None
            if last_top is not None and full.startswith(last_top + os.sep):
                groups[-1][2].append((full, data))
                continue
            if groups:
                top = missing_top(self.root, os.path.dirname(full))
            else:
                top = None if first_exists else missing_top(self.root, os.path.dirname(full), False)
            if top is not None and top == last_top:
                groups[-1][2].append((full, data))
            else:
                groups.append((path, top, [(full, data)]))
        return groups

    async def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> None:
        if durable:
            await self._put_contents(items)  # in order, which is more than asked
        else:
            await _in_parts(self._put_all_unsynced, items)

    def _put_all_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Each object written with no wait for the disk. An empty one is simply created where
        it goes (it has no content to tear); others are written and renamed into place."""
        for path, data in items:
            try:
                if data:
                    write_atomically(self.root, self._full(path), data, sync=False)
                else:
                    create_empty(self._full(path))
            except OSError as exc:
                raise translate(path, exc) from exc

    unfinished_reads = True

    async def _open_local(self, path: str) -> int | None:
        full = self._full(path)
        return await in_thread(path, lambda: os.open(full, os.O_RDONLY | os.O_CLOEXEC))

    def _reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        return self._read_file(path, self._full(path), offset, length)

    def _unfinished_reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        # A writer's bytes wait in its pending file, which commit renames and cancel removes.
        return self._read_file(path, pending_file(self._full(path)), offset, length)

    async def _read_file(self, path: str, full: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        fd = await in_thread(path, lambda: os.open(full, os.O_RDONLY | os.O_CLOEXEC))
        try:
            size = os.fstat(fd).st_size
            if offset > size:
                raise InvalidOffset(path, f"offset {offset} beyond size {size}")
            end = size if length is None else min(size, offset + length)
            if end == offset:
                return
            base = offset - offset % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(fd, end - base, prot=mmap.PROT_READ, offset=base)
        finally:
            os.close(fd)
        async for chunk in _mapped_chunks(mapped, offset - base, end - base):
            yield chunk  # type: ignore[misc]  # memoryviews: bytes-like, and no copy

    async def _writer(self, path: str, append: bool) -> FileWriter:
        full = self._full(path)

        def open_file() -> tuple[int, int]:
            if os.path.isdir(full):
                raise IsADirectoryError(errno.EISDIR, "a directory is stored there", full)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (0 if append else os.O_TRUNC)
            fd = os.open(pending_file(full), flags, 0o644)
            return fd, os.fstat(fd).st_size

        fd, size = await in_thread(path, open_file)
        return FilesystemWriter(path, full, fd, size)

    async def _stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self._full(path))
        except OSError as exc:
            raise translate(path, exc) from exc
        is_dir = (st.st_mode & 0o170000) == 0o040000
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    async def _list(self, path: str, after: str | None, limit: int | None) -> list[str]:
        full = self._full(path)
        prefix = "" if path == "/" else path
        names: Sequence[str] | None = self._listings.get(full)
        if names is None:
            names = await self._sorted_names(path, full)
        return [f"{prefix}/{name}" for name in listings.page(names, after, limit)]

    async def _sorted_names(self, path: str, full: str) -> Sequence[str]:
        """The names in directory ``full``, sorted; a large directory's are remembered."""
        listed_at = time.time()
        try:
            entries = os.scandir(full)
        except NotADirectoryError:
            raise PathNotFound(path) from None
        except OSError as exc:
            raise translate(path, exc) from exc
        with entries:
            # The first entries are read here, the rest of a large directory in a thread.
            names = [entry.name for entry in itertools.islice(entries, INLINE_ENTRIES)]
            if len(names) < INLINE_ENTRIES:
                listed = [name for name in names if not name.startswith(TEMP_PREFIX)]
                listed.sort()
                if len(listed) < listings.REMEMBERED_FROM:
                    return listed
                try:
                    packed, st = listings.SortedNames(listed), os.stat(full)
                except OSError:
                    return listed  # gone meanwhile: as listed, not remembered
            else:

                def list_rest() -> tuple[listings.SortedNames, os.stat_result]:
                    names.extend(entry.name for entry in entries)
                    listed = sorted(name for name in names if not name.startswith(TEMP_PREFIX))
                    return listings.SortedNames(listed), os.stat(full)

                packed, st = await in_thread(path, list_rest)
        self._listings.remember(full, listed_at, st, packed)
        return packed

    async def _move(self, source: str, destination: str, size: int | None) -> None:
        src, dst = self._full(source), self._full(destination)

        def move() -> None:
            parent = os.path.dirname(dst)
            try:
                os.replace(src, dst)
                changed = parent
            except FileNotFoundError:
                os.stat(src)  # a missing source is PathNotFound even when the parent must be made
                changed = make_directories(parent)
                os.replace(src, dst)
            # Before the answer: a pushed blob's content is this rename, and a link to it follows.
            sync_directory(changed)

        await in_thread(source, move)

    async def _delete(self, path: str) -> None:
        full = self._full(path)

        def delete_tree() -> None:
            # Rename first so a concurrent reader never sees a half-deleted tree.
            doomed = os.path.join(os.path.dirname(full), f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
            os.rename(full, doomed)
            # A write whose path was looked up before the rename can still land inside the
            # renamed tree a moment later; sweep until nothing is left.
            for _ in range(DELETE_SWEEPS):
                shutil.rmtree(doomed, ignore_errors=True)
                if not os.path.lexists(doomed):
                    return
                time.sleep(0.001)

        def delete() -> None:
            if os.path.isdir(full) and not os.path.islink(full):
                delete_tree()
                return
            try:
                os.unlink(full)
            except IsADirectoryError:  # made again (by a concurrent write) since the check
                delete_tree()
                return
            # Its directory goes too when that left it empty, as with delete_many, in this same
            # thread hop; a write that lands in it first keeps it (rmdir refuses).
            with contextlib.suppress(OSError):  # not empty, or gone already
                os.rmdir(os.path.dirname(full))

        await in_thread(path, delete)

    async def _list_many(self, paths: Sequence[str]) -> list[list[str] | None]:
        return await to_thread(self._list_all, paths)

    def _list_all(self, paths: Sequence[str]) -> list[list[str] | None]:
        def names(path: str) -> list[str]:
            prefix = "" if path == "/" else path
            found = os.listdir(self._full(path))
            return sorted(f"{prefix}/{name}" for name in found if not name.startswith(TEMP_PREFIX))

        return _each_present(paths, names)

    async def _stat_many(self, paths: Sequence[str]) -> list[FileInfo | None]:
        return await to_thread(self._stat_all, paths)

    def _stat_all(self, paths: Sequence[str]) -> list[FileInfo | None]:
        def info(path: str) -> FileInfo:
            st = os.stat(self._full(path))
            is_dir = (st.st_mode & 0o170000) == 0o040000
            return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

        return _each_present(paths, info)

    async def _get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return await to_thread(self._get_all, paths)

    def _get_all(self, paths: Sequence[str]) -> list[bytes | None]:
        def content(path: str) -> bytes:
            fd = os.open(self._full(path), os.O_RDONLY | os.O_CLOEXEC)
            try:
                return _read_fd(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)

        return _each_present(paths, content)

    async def _delete_many(self, paths: Sequence[str]) -> None:
        await _in_parts(self._delete_all, paths)

    def _delete_all(self, paths: Sequence[str]) -> None:
        for path in paths:
            full = self._full(path)
            try:
                os.unlink(full)
            except OSError as exc:
                if exc.errno not in {errno.ENOENT, errno.ENOTDIR}:
                    raise translate(path, exc) from exc
            # The directory goes too when that left it empty; a write that lands in it first
            # keeps it (rmdir refuses a directory that holds anything).
            with contextlib.suppress(OSError):  # not empty, or gone already
                os.rmdir(os.path.dirname(full))

    async def _purge_incomplete(self, path: str, older_than: float) -> int:
        """Remove what crashed writers left below ``path`` (temp files and trees staged beside
        their targets, pending files, half-deleted trees) and in the root (where earlier versions
        staged every write), older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        top = self._full(path)

        def sweep() -> int:
            staged = [n for n in os.listdir(self.root) if n.startswith(TEMP_PREFIX)]
            leftovers = [os.path.join(self.root, n) for n in staged]
            for directory, subdirectories, files in os.walk(top):
                leftovers += [os.path.join(directory, n) for n in files if n.startswith(TEMP_PREFIX)]
                leftovers += [os.path.join(directory, n) for n in subdirectories if n.startswith(TEMP_PREFIX)]
                subdirectories[:] = [n for n in subdirectories if not n.startswith(TEMP_PREFIX)]
            removed = 0
            for leftover in leftovers:
                try:
                    if os.lstat(leftover).st_mtime >= cutoff:
                        continue
                    if os.path.isdir(leftover) and not os.path.islink(leftover):
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        os.unlink(leftover)
                except FileNotFoundError:
                    continue  # finished or removed meanwhile
                removed += 1
            return removed

        try:
            return await to_thread(sweep)
        except FileNotFoundError:
            return 0  # nothing stored yet

    async def _walk(self, path: str) -> AsyncIterator[FileInfo]:
        pending = [path]
        while pending:
            # Many directories per trip to a worker thread: a tree of small directories (the
            # layout keeps one per link) is walked at the speed of scandir, not of thread hops.
            found = await to_thread(self._scan_some, pending, path)
            for info in found:
                yield info

    def _scan_some(self, pending: list[str], top: str) -> list[FileInfo]:
        """Scan directories from ``pending`` (adding their subdirectories) until WALK_BATCH files
        are found or nothing is left; the files found."""
        found: list[FileInfo] = []
        while pending and len(found) < WALK_BATCH:
            directory = pending.pop()
            full = self._full(directory) if directory != "/" else self.root
            try:
                entries = _scan_with_stats(full)
            except OSError as exc:
                if directory != top and isinstance(exc, FileNotFoundError | NotADirectoryError):
                    continue  # removed while walking
                raise translate(directory, exc) from exc  # never a shorter walk: GC would delete
            prefix = "" if directory == "/" else directory
            for name, is_dir, size, mtime in entries:
                child = f"{prefix}/{name}"
                if is_dir:
                    pending.append(child)
                else:
                    found.append(FileInfo(child, size, mtime))
        return found


async def _mapped_chunks(mapped: mmap.mmap, start: int, end: int) -> AsyncIterator[memoryview]:
    """Stream a mapped file without copying it into the process.

    Blobs are never changed in place (they are written elsewhere and renamed), so the mapping
    stays valid however long a client takes. Each window's pages are brought in by a worker
    thread before the event loop sends them, so a cold file never blocks the loop; windows
    already sent are dropped from the process (the page cache keeps them), so memory stays at
    a few windows whatever the blob's size.
    """
    view = memoryview(mapped)
    position = start
    sent: list[tuple[int, int]] = []
    while position < end:
        stop = min(position + MAP_CHUNK, end)
        aligned = position - position % mmap.PAGESIZE
        ahead = min(end, stop + MAP_CHUNK) - stop
        await to_bulk_thread(populate, mapped, aligned, stop - aligned, ahead)
        yield view[position:stop]
        sent.append((aligned, stop - aligned))
        if len(sent) > 1:
            # The window before this one has gone out: the server waits for the transport to
            # drain before each write. Should a few bytes of it remain, dropping the pages from
            # the process loses nothing: the mapping faults them in again from the page cache.
            mapped.madvise(mmap.MADV_DONTNEED, *sent.pop(0))
        position = stop


def _read_fd(fd: int, size: int) -> bytes:
    """The ``size`` bytes ``fstat`` found, without a last read to find the end: stored files are
    replaced, never changed in place. A file it found empty is read to its end."""
    chunks: list[bytes] = []
    got = 0
    while size == 0 or got < size:
        chunk = os.read(fd, max(size - got, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _scan_with_stats(full: str) -> list[tuple[str, bool, int, float]]:
    entries = []
    with os.scandir(full) as scan:
        for entry in scan:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):  # the type comes with the entry: no stat
                    entries.append((entry.name, True, 0, 0.0))
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            entries.append((entry.name, False, st.st_size, st.st_mtime))
    return entries


async def _in_parts(work: Callable[[Sequence[_T]], None], items: Sequence[_T]) -> None:
    """``work`` over ``items`` split in up to PARTS thread calls at once, for batches whose
    items need no order among them: each unlink or create can wait on the filesystem's journal,
    and those waits overlap."""
    size = max(PART_MIN, -(-len(items) // PARTS))
    parts = [items[start : start + size] for start in range(0, len(items), size)]
    await asyncio.gather(*(to_thread(work, part) for part in parts))


def _each_present(paths: Sequence[str], read: Callable[[str], _T]) -> list[_T | None]:
    """``read`` of each path, in order; None where nothing is stored (a batch's missing paths)."""
    found: list[_T | None] = []
    for path in paths:
        try:
            found.append(read(path))
        except OSError as exc:
            if exc.errno not in {errno.ENOENT, errno.ENOTDIR}:
                raise translate(path, exc) from exc
            found.append(None)
    return found
