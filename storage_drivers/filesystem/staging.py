"""Writes a reader, or a crash, sees whole or not at all: each object is staged beside where it
goes (a temp file, or a private tree of the missing directories), placed with one rename, and the
directory that gained it synced."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

TEMP_PREFIX = ".dockyard-"
"""Names of in-flight temp files; never listed. Valid path components cannot start the same way
in the registry's layout, which only writes names it validated."""
RENAME_ATTEMPTS = 100
"""Each failed attempt means a delete of the directory raced the write; the write then lands after it."""


def write_atomically(
    root: str,
    full: str,
    data: bytes,
    sync: bool = True,
    *,
    exclusive: bool = False,
    anonymous: bool = False,
    like: str | None = None,
) -> str:
    """Write ``data`` to ``full`` so that a reader, or a crash, sees the old content or the new
    one, never a torn one (see ``stage`` and ``_place``); the directory that gained an entry,
    which the caller syncs when it wants the write to survive a power loss. ``sync``: the content
    is on disk before it is visible. ``exclusive``: FileExistsError, and nothing changed, when
    something is stored at ``full``. ``anonymous``, ``like``: see ``stage``.

    A concurrent delete (of a tag being pushed, say) may remove the directory the object was
    staged in at any moment; the write is then made again, as if it had come after the delete.
    """
    for _ in range(RENAME_ATTEMPTS):
        staged = stage(root, full, data, sync, anonymous, like=like)
        try:
            changed = _place(staged, exclusive)
        except BaseException:
            discard([staged])
            raise
        if changed is not None:
            return changed
    raise FileNotFoundError(errno.ENOENT, "the directory kept disappearing", full)


@dataclass(frozen=True)
class Staged:
    """An object written beside where it goes and not visible yet."""

    full: str
    """Where it goes."""
    path: str
    """What one rename makes visible: a temp file beside ``full``, or a private tree."""
    top: str
    """What ``path`` is renamed to: ``full``, or the highest of its missing directories."""
    file: str
    """The object's content: ``path`` itself, or ``full``'s place inside the tree."""
    linked: bool = False
    """Whether ``file`` is a hard link to another stored file (see ``stage``)."""


def stage(
    root: str, full: str, data: bytes, sync: bool = True, anonymous: bool = False, *, like: str | None = None
) -> Staged:
    """``data`` in a hidden temp file in ``full``'s directory, on disk (``sync``). Where that
    directory is missing, the file is written at its final name inside a private tree, made in
    the nearest directory that exists, holding the missing directories: one rename then makes
    the directories appear together with the file, so a crash never leaves an empty directory
    (an empty tag directory would be a tag pointing nowhere). Staging beside the target, not in
    one shared directory, keeps concurrent writes from queueing on that directory's lock.

    ``anonymous``: the content is written and synced in a file without a name (``O_TMPFILE``)
    and only then linked at the temp file's name. Its sync then writes the file alone: the sync
    of a named new file on a filesystem without a journal (ext4's ``nojournal``) also writes
    each new directory above it, one write at a time, which is what a directory sync would do
    (the caller wants none).

    ``like``: a stored file that holds ``data`` and is never changed in place (a link another
    repository holds for the same digest). The staged object is then a hard link to it, its
    modification time set to now, instead of a new file: no inode to allocate, nothing to write
    or sync, as its content is on disk already. Where ``like`` is not a regular file of
    ``data``'s size, or cannot be linked (gone meanwhile, too many links), ``data`` is written."""
    if like is not None and not _same_size(like, len(data)):
        like = None
    name = f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
    parent = os.path.dirname(full)
    for _ in range(RENAME_ATTEMPTS):
        staged = Staged(full, os.path.join(parent, name), full, os.path.join(parent, name))
        try:
            if like is not None and _link_to(like, staged.file):
                return replace(staged, linked=True)
            fd, link = _create(staged.file, anonymous)
        except FileNotFoundError:
            try:
                staged = _stage_tree(root, full, name)
                if like is not None and _link_to(like, staged.file):
                    return replace(staged, linked=True)
                fd, link = _create(staged.file, anonymous)
            except FileNotFoundError:  # a delete took the directory the tree was made in
                discard([staged])
                continue
        try:
            _fill(fd, data, sync, staged.file if link else None)
        except FileNotFoundError:  # the link's directory went meanwhile (a delete)
            discard([staged])
            continue
        except BaseException:
            discard([staged])
            raise
        return staged
    raise FileNotFoundError(errno.ENOENT, "the directory kept disappearing", full)


def _same_size(file: str, size: int) -> bool:
    """Whether ``file`` is a regular file (not a symbolic link) of ``size`` bytes."""
    try:
        st = os.lstat(file)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _link_to(like: str, file: str) -> bool:
    """Make ``file`` a hard link to ``like``, modified now (the time of this write, which
    garbage collection's grace for young links reads; ``like``'s other names show it too):
    True; False, with nothing made, when it cannot be (``like`` gone, too many links, a
    filesystem without hard links). FileNotFoundError when ``file``'s directory is missing."""
    try:
        os.link(like, file)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(file)):
            raise
        return False  # ``like`` was deleted meanwhile
    except OSError as exc:
        if exc.errno in {errno.EMLINK, errno.EPERM, errno.EXDEV, errno.EOPNOTSUPP}:
            return False
        raise
    try:
        os.utime(file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(file)
        raise
    return True


def _create(file: str, anonymous: bool) -> tuple[int, bool]:
    """A new file to write ``file``'s content in: ``file`` itself, or (``anonymous``, where the
    filesystem has them) a file without a name in its directory, to be linked there; the file
    and whether it must be linked."""
    if anonymous and _ANONYMOUS_FILES:
        try:
            return os.open(os.path.dirname(file), _ANONYMOUS_FLAGS, 0o644), True
        except OSError as exc:
            if exc.errno not in {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}:
                raise  # a missing directory included; otherwise the filesystem has none
    return os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), False


def _linker() -> Callable[[int, str], None] | None:
    """``link(fd, name)``: give the file without a name ``fd`` the new name ``name``, by
    ``linkat`` of its ``/proc`` entry with ``AT_SYMLINK_FOLLOW`` (Python's ``os.link`` calls
    ``link``, which links the ``/proc`` entry itself and fails); None without it."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        linkat = ctypes.CDLL(None, use_errno=True).linkat
    except (OSError, AttributeError):
        return None
    linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    linkat.restype = ctypes.c_int
    cwd, follow = -100, 0x400  # AT_FDCWD, AT_SYMLINK_FOLLOW (Linux)

    def link(fd: int, name: str) -> None:
        if linkat(cwd, f"/proc/self/fd/{fd}".encode(), cwd, os.fsencode(name), follow) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), name)  # FileNotFoundError for ENOENT

    return link


_link_anonymous = _linker()
_ANONYMOUS_FILES = _link_anonymous is not None
_ANONYMOUS_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC


def _fill(fd: int, data: bytes, sync: bool, link: str | None = None) -> None:
    """Write ``data`` to the new file ``fd``, on disk (``sync``), then give it the name ``link``
    (a file without a name: see ``stage``), and close it."""
    try:
        _write_all(fd, data)
        if sync:
            os.fdatasync(fd)  # the content and its size; the inode's times need no disk write
        if link is not None and _link_anonymous is not None:
            _link_anonymous(fd, link)
    finally:
        os.close(fd)


def missing_top(root: str, directory: str, exists: bool | None = None) -> str | None:
    """The highest missing directory on the way to ``directory`` below ``root``; None when
    ``directory`` exists (or when the root itself is missing: ``stage`` makes it). ``exists``:
    what a lookup of ``directory`` found already."""
    if os.path.isdir(directory) if exists is None else exists:
        return None
    top = directory
    while top != root and not os.path.isdir(os.path.dirname(top)):
        top = os.path.dirname(top)
    return None if top == root else top


def stage_together(root: str, top: str, items: Sequence[tuple[str, bytes]]) -> list[Staged]:
    """Objects whose directories are missing below the same ``top``, written (and synced) in one
    private tree (see ``stage``), which one rename places: they appear together, with each
    directory made once. Should a delete take ``top``'s parent meanwhile, each is staged alone.

    Every directory and file is made and written first, and only then is each file synced: a
    sync on a filesystem without a journal (ext4's ``nojournal``) writes the file's new parent
    directories and each inode's table block itself, one write at a time, and the new inodes
    share table blocks. Synced once all is made, each block is written once, by the first sync
    that finds it dirty; synced as each file is made, the shared blocks are written again for
    every file. Either way every file is on disk before the tree is placed."""
    tree = os.path.join(os.path.dirname(top), f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
    made = {tree}
    staged = []
    written: list[int] = []  # open, written, not yet synced
    try:
        os.mkdir(tree)
        for full, data in items:
            # Paths below ``top`` (absolute and normalised, as the driver makes them): the tree's
            # own paths are the same strings with ``top`` swapped for ``tree``, no relpath needed.
            inside = tree + full[len(top) :]
            directory = tree
            for part in full[len(top) + 1 :].split(os.sep)[:-1]:
                directory = f"{directory}{os.sep}{part}"
                if directory not in made:
                    os.mkdir(directory)
                    made.add(directory)
            item = Staged(full, tree, top, inside)
            written.append(os.open(inside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            _write_all(written[-1], data)
            staged.append(item)
        while written:
            os.fdatasync(written[0])  # as ``_fill``: the content and its size
            os.close(written.pop(0))
    except FileNotFoundError:  # a delete took the directory the tree was made in
        _close_all(written)
        shutil.rmtree(tree, ignore_errors=True)
        return [stage(root, full, data) for full, data in items]
    except BaseException:
        _close_all(written)
        shutil.rmtree(tree, ignore_errors=True)
        raise
    return staged


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _stage_tree(root: str, full: str, name: str) -> Staged:
    """The private tree ``name`` for ``stage``, with the directories above ``full`` made in it."""
    parent = os.path.dirname(full)
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # before the first write only: staging stays inside
    top = parent  # the highest missing directory: the one that appears
    while top != root and not os.path.isdir(os.path.dirname(top)):
        top = os.path.dirname(top)
    if top == root:  # the root was missing and ``full`` goes right in it
        return Staged(full, os.path.join(root, name), full, os.path.join(root, name))
    tree = os.path.join(os.path.dirname(top), name)
    # The tree is new and private: one mkdir per level, without makedirs' stat of each. Paths
    # below ``top`` are ``top`` and a suffix (the driver's are absolute and normalised).
    directory = tree
    os.mkdir(directory)
    for part in parent[len(top) + 1 :].split(os.sep) if parent != top else ():
        directory = f"{directory}{os.sep}{part}"
        os.mkdir(directory)
    return Staged(full, tree, top, tree + full[len(top) :])


def _place(staged: Staged, exclusive: bool = False, alone: bool = True) -> str | None:
    """Make a staged object visible, by one rename in the common case; the directory that gained
    an entry, or None (the staged object discarded) when a delete took the directory it was
    staged in or the one it goes to: stage it again. ``exclusive``: a link(2) of the file, which
    never replaces, raising FileExistsError when something is stored. Not ``alone`` (a tree
    holding several objects): None as well when the tree's top was made meanwhile."""
    source, target = staged.path, staged.top
    while True:
        try:
            if exclusive and target == staged.full:
                os.link(source, target)
            else:
                os.rename(source, target)  # a directory replaces only an empty one
        except FileNotFoundError:
            discard([staged])
            return None
        except OSError as exc:
            if target == staged.full or exc.errno not in {errno.ENOTEMPTY, errno.EEXIST}:
                raise
            if not alone:
                discard([staged])
                return None
            # ``target`` was made meanwhile (by a write beside this one): what goes below it moves
            # in instead, one level down.
            part = os.path.relpath(staged.full, target).split(os.sep)[0]
            source, target = os.path.join(source, part), os.path.join(target, part)
            continue
        if source != staged.path or exclusive:
            discard([staged])  # the tree's emptied directories, or the file linked into place
        elif staged.linked and staged.path == staged.file:
            # A rename between two links to one file does nothing (the target was linked to the
            # same file before: a link mounted again from the same source): the temp name stays.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(source)
        return os.path.dirname(target)


def place_in_order(root: str, staged: Sequence[Staged], data: Sequence[bytes]) -> list[str]:
    """Place each staged object in order, the objects of a shared tree (consecutive) at once;
    the directories that gained entries, which the caller syncs. A journaling filesystem logs
    the renames in the order they are made, so a crash keeps a prefix of them. What a delete
    or a concurrent write kept from being placed as staged is written again, one by one; what
    is not placed is discarded on failure."""
    changed: dict[str, None] = {}  # in order, once each
    placed = 0
    try:
        while placed < len(staged):
            item = staged[placed]
            count = 1
            while placed + count < len(staged) and staged[placed + count].path == item.path:
                count += 1
            found = _place(item, alone=count == 1)
            if found is not None:
                changed[found] = None
            else:
                for index in range(placed, placed + count):
                    changed[write_atomically(root, staged[index].full, data[index])] = None
            placed += count
    except BaseException:
        discard(staged[placed:])
        raise
    return list(changed)


def discard(staged: Iterable[Staged]) -> None:
    for item in staged:
        if item.path == item.file:
            with contextlib.suppress(OSError):
                os.unlink(item.path)
        else:
            shutil.rmtree(item.path, ignore_errors=True)


def create_empty(full: str) -> None:
    """Create (or empty) the file ``full`` and any missing directory above it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    for _ in range(RENAME_ATTEMPTS):
        try:
            os.close(os.open(full, flags, 0o644))
            return
        except FileNotFoundError:  # the directory is not there (yet, or any more)
            os.makedirs(os.path.dirname(full), exist_ok=True)
    raise FileNotFoundError(errno.ENOENT, "the directory kept disappearing", full)


def make_directories(directory: str) -> str:
    """Make ``directory`` and any missing one above it; the directory that gained an entry (the
    parent of the highest one made), the one to sync."""
    top = directory
    while not os.path.isdir(os.path.dirname(top)):
        top = os.path.dirname(top)
    os.makedirs(directory, exist_ok=True)
    return os.path.dirname(top)


def sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return  # deleted meanwhile (a tag deleted while pushed): as if the write came before it
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
