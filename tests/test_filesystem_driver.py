"""Filesystem driver behaviour beyond the shared conformance suite."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storage_drivers import StorageError
from storage_drivers.filesystem import TEMP_PREFIX, FilesystemDriver
from tests.support.residency import resident_fraction


async def test_purge_incomplete_removes_only_old_leftovers_of_crashed_writers(tmp_path: Path) -> None:
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repositories/app/link", b"sha256:x")
    writer = await driver.writer("/repositories/app/_uploads/u/data")
    await writer.write(b"partial")
    await writer.close()  # an upload in progress: its pending file must survive a young purge
    old = time.time() - 3600
    staged = tmp_path / f"{TEMP_PREFIX}crashed.tmp"
    staged.write_bytes(b"half a link")
    half_deleted = tmp_path / "repositories" / "app" / f"{TEMP_PREFIX}doomed.tmp"
    (half_deleted / "current").mkdir(parents=True)
    (half_deleted / "current" / "link").write_bytes(b"sha256:y")
    for leftover in (staged, half_deleted):
        os.utime(leftover, (old, old))

    removed = await driver.purge_incomplete("/repositories", 600)

    assert removed == 2
    assert not staged.exists()
    assert not half_deleted.exists()
    assert await driver.get_content("/repositories/app/link") == b"sha256:x"
    reopened = await driver.writer("/repositories/app/_uploads/u/data", append=True)
    assert reopened.size == len(b"partial")
    await reopened.cancel()


async def test_a_write_cut_off_before_it_lands_leaves_no_empty_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories a small write creates appear together with the object, never before it."""
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repositories/app/_manifests/tags/old/current/link", b"sha256:a")
    real_rename = os.rename

    def dying_rename(source: str, destination: str) -> None:
        if destination.endswith("/tags/new"):
            raise SystemExit("the process dies here")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", dying_rename)
    with pytest.raises(SystemExit):
        await driver.put_content("/repositories/app/_manifests/tags/new/current/link", b"sha256:b")
    monkeypatch.undo()

    assert await driver.list("/repositories/app/_manifests/tags") == ["/repositories/app/_manifests/tags/old"]
    await driver.put_content("/repositories/app/_manifests/tags/new/current/link", b"sha256:b")
    assert await driver.get_content("/repositories/app/_manifests/tags/new/current/link") == b"sha256:b"


def _large_directory(root: Path, entries: int) -> Path:
    directory = root / "repositories" / "team"
    for i in range(entries):
        (directory / f"app-{i:05d}").mkdir(parents=True)
    return directory


def _count_scandirs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = os.scandir

    def counting(path: str) -> object:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    return calls


async def test_a_settled_large_directory_is_listed_once_and_every_change_shows_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FilesystemDriver(str(tmp_path))
    directory = _large_directory(tmp_path, 1500)
    old = time.time() - 60
    os.utime(directory, (old, old))
    scandirs = _count_scandirs(monkeypatch)

    first = await driver.list("/repositories/team")
    again = await driver.list("/repositories/team")

    assert len(first) == 1500
    assert again == first
    assert len(scandirs) == 1, "the unchanged directory was read again"
    again.clear()  # the caller's copy: the remembered listing stays whole
    assert len(await driver.list("/repositories/team")) == 1500

    (directory / "app-new").mkdir()
    assert "/repositories/team/app-new" in await driver.list("/repositories/team")
    (directory / "app-00007").rmdir()
    os.utime(directory, (old, old))  # even with the old time put back, the removal shows
    assert "/repositories/team/app-00007" not in await driver.list("/repositories/team")
    (directory / "a-file").write_bytes(b"x")
    assert "/repositories/team/a-file" in await driver.list("/repositories/team")


async def test_a_directory_replaced_or_changed_recently_is_always_read_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FilesystemDriver(str(tmp_path))
    directory = _large_directory(tmp_path, 1100)
    scandirs = _count_scandirs(monkeypatch)

    await driver.list("/repositories/team")
    await driver.list("/repositories/team")
    assert len(scandirs) == 2, "a listing taken within a clock tick of a change was reused"

    old = time.time() - 60
    os.utime(directory, (old, old))
    await driver.list("/repositories/team")
    replacement = _large_directory(tmp_path / "elsewhere", 1200)
    os.utime(replacement, (old, old))
    os.rename(directory, tmp_path / "gone")
    os.rename(replacement, directory)
    assert len(await driver.list("/repositories/team")) == 1200


def cached_fraction(path: Path) -> float:
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
        return resident_fraction(mapped)


async def test_large_aligned_appends_bypass_the_page_cache_and_others_do_not(tmp_path: Path) -> None:
    driver = FilesystemDriver(str(tmp_path))
    aligned = mmap.mmap(-1, 4 << 20)  # page-aligned, as the registry's upload batches
    aligned[:] = os.urandom(4 << 20)
    writer = await driver.writer("/direct")
    for _ in range(3):
        await writer.write(memoryview(aligned))
    await writer.write(b"an unaligned tail")
    await writer.commit()
    unaligned = bytes(aligned)  # the same bytes, from memory a direct write cannot use
    writer = await driver.writer("/buffered")
    for _ in range(3):
        await writer.write(unaligned)
    await writer.commit()

    # Measured before the contents are read back, which brings them into the page cache.
    assert cached_fraction(tmp_path / "direct") < 0.01
    assert cached_fraction(tmp_path / "buffered") > 0.99  # the measurement can see cached pages
    assert (tmp_path / "direct").read_bytes() == bytes(aligned) * 3 + b"an unaligned tail"
    assert (tmp_path / "buffered").read_bytes() == unaligned * 3


async def test_a_batch_of_writes_appears_in_order_and_a_failure_leaves_no_temp_files(tmp_path: Path) -> None:
    """``put_contents`` renames in the order given: a reader polling meanwhile never finds a later
    object without the earlier ones; when one cannot be placed, those after it are not placed
    and their staged files are removed."""
    driver = FilesystemDriver(str(tmp_path))
    rounds = 20
    current = 0
    seen: list[list[bool]] = []

    def poll() -> None:
        while current < rounds:
            top = tmp_path / "r" / str(current)
            # Latest first: a later object seen, the earlier ones must be there when looked at next.
            state = [(top / str(i) / "link").exists() for i in reversed(range(6))]
            seen.append(state[::-1])

    polling = asyncio.ensure_future(asyncio.to_thread(poll))
    for round_ in range(rounds):
        current = round_
        await driver.put_contents([(f"/r/{round_}/{i}/link", b"sha256:x") for i in range(6)])
    current = rounds
    await polling
    assert seen
    for state in seen:
        assert state == sorted(state, reverse=True), state  # a prefix: True... then False...

    (tmp_path / "r" / "directory").mkdir()
    (tmp_path / "r" / "directory" / "inside").write_bytes(b"a directory, not a file")
    with pytest.raises(StorageError):
        await driver.put_contents([("/r/first", b"1"), ("/r/directory", b"2"), ("/r/third", b"3")])
    assert (tmp_path / "r" / "first").read_bytes() == b"1"
    assert not (tmp_path / "r" / "third").exists()
    assert _temp_files(tmp_path) == []

    # One that cannot even be written (a file where a directory must be): none is placed.
    (tmp_path / "r" / "file").write_bytes(b"a file, not a directory")
    with pytest.raises(StorageError):
        await driver.put_contents([("/r/new/first", b"1"), ("/r/file/second", b"2"), ("/r/new/third", b"3")])
    assert not (tmp_path / "r" / "new").exists()
    assert _temp_files(tmp_path) == []


def _temp_files(root: Path) -> list[str]:
    """Staged files and trees left anywhere below ``root``."""
    return [
        os.path.join(directory, name)
        for directory, subdirectories, files in os.walk(root)
        for name in subdirectories + files
        if name.startswith(TEMP_PREFIX)
    ]


async def test_every_acknowledged_write_syncs_the_directory_that_gained_an_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename is durable once its directory is: each write answers only after the directory
    holding its new entry (the file's, or the highest new directory's parent) was synced."""
    synced: list[Path] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repo/existing/first", b"1")  # makes the directories

    def gained(write: str) -> list[Path]:
        found = list(synced)
        del synced[:]
        assert found, f"{write} synced no directory"
        return found

    await driver.put_content("/repo/existing/link", b"sha256:x")
    assert tmp_path / "repo" / "existing" in gained("a write into an existing directory")
    await driver.put_content("/repo/new/deeper/link", b"sha256:x")
    assert tmp_path / "repo" in gained("a write making directories")
    assert await driver.create_content("/repo/other/link", b"sha256:x")
    assert tmp_path / "repo" in gained("an exclusive create")
    await driver.put_content("/uploads/data", b"content")
    del synced[:]
    await driver.move("/uploads/data", "/blobs/ab/abcd/data")
    assert tmp_path in gained("a move making directories")
    await driver.put_content("/uploads/data", b"content")
    del synced[:]
    await driver.move("/uploads/data", "/blobs/ab/abcd/data")
    assert tmp_path / "blobs" / "ab" / "abcd" in gained("a move into an existing directory")
    await driver.put_contents(
        [("/repo/m/revision/link", b"1"), ("/repo/m/tags/t/link", b"2"), ("/repo/x/link", b"3")]
    )
    assert {tmp_path / "repo"} <= set(gained("a batch"))
    assert (tmp_path / "repo" / "m" / "tags" / "t" / "link").read_bytes() == b"2"
    writer = await driver.writer("/uploads/u/data")
    await writer.write(b"upload")
    del synced[:]
    await writer.commit()  # an upload's data, renamed from its pending file
    assert tmp_path / "uploads" / "u" in gained("a writer's commit")
    assert (tmp_path / "uploads" / "u" / "data").read_bytes() == b"upload"
    # One new tree (a new repository's manifest: written, placed and synced in one thread call).
    await driver.put_contents([("/repo/n/revision/link", b"1"), ("/repo/n/tags/t/link", b"2")])
    assert gained("a batch placed by one rename") == [tmp_path / "repo"]
    assert (tmp_path / "repo" / "n" / "revision" / "link").read_bytes() == b"1"
    assert _temp_files(tmp_path) == []


async def test_an_unsynced_write_has_its_content_on_disk_before_it_appears_and_syncs_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount's link: never empty after a crash, made durable by the next synced write. Its
    content is synced while the file has no name yet (the sync then writes no new directory)."""
    calls: list[tuple[str, Path]] = []
    names_when_synced: list[int] = []
    fsync, fdatasync, rename = os.fsync, os.fdatasync, os.rename

    def recording(kind: str, call: Callable[[int], None]) -> Callable[[int], None]:
        def record(fd: int) -> None:
            calls.append((kind, Path(os.readlink(f"/proc/self/fd/{fd}"))))
            if kind == "fdatasync":
                names_when_synced.append(os.fstat(fd).st_nlink)
            call(fd)

        return record

    def recording_rename(source: str, target: str) -> None:
        calls.append(("rename", Path(target)))
        rename(source, target)

    monkeypatch.setattr(os, "fsync", recording("fsync", fsync))
    monkeypatch.setattr(os, "fdatasync", recording("fdatasync", fdatasync))
    monkeypatch.setattr(os, "rename", recording_rename)
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repo/existing/first", b"1")
    for path in ("/repo/existing/link", "/repo/new/_layers/sha256/abcd/link"):
        del calls[:], names_when_synced[:]
        await driver.put_content_unsynced(path, b"sha256:abcd")
        kinds = [kind for kind, _ in calls]
        assert kinds == ["fdatasync", "rename"], f"{path}: {calls}"
        assert names_when_synced == [0], f"{path}: synced with a name"
        assert (tmp_path / path.lstrip("/")).read_bytes() == b"sha256:abcd"
        assert os.stat(tmp_path / path.lstrip("/")).st_nlink == 1
    del calls[:]
    await driver.put_contents([("/repo/new/_manifests/revisions/link", b"1")])
    assert calls[-1][0] == "fsync", "the manifest's batch ends without a sync"


async def test_a_new_trees_files_are_each_synced_before_the_tree_is_placed_and_none_left_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new repository's manifest (one private tree): every file's content is synced, once,
    before the rename that makes the tree visible, and no file stays open, placed or refused."""
    calls: list[tuple[str, str]] = []
    fdatasync, rename = os.fdatasync, os.rename

    def recording_fdatasync(fd: int) -> None:
        calls.append(("fdatasync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        fdatasync(fd)

    def recording_rename(source: str, target: str) -> None:
        calls.append(("rename", target))
        rename(source, target)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    monkeypatch.setattr(os, "rename", recording_rename)
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repo/n/_layers/link", b"0")
    open_before = len(os.listdir("/proc/self/fd"))
    del calls[:]
    items = [
        ("/repo/n/_manifests/revisions/r/link", b"1"),
        ("/repo/n/_manifests/tags/t/current/link", b"2"),
        ("/repo/n/_manifests/tags/t/index/r/link", b"3"),
    ]
    await driver.put_contents(items)
    assert calls == [("fdatasync", "link")] * 3 + [("rename", str(tmp_path / "repo/n/_manifests"))]
    for path, data in items:
        assert (tmp_path / path.lstrip("/")).read_bytes() == data
    # Refused while the tree is made (a file where a directory must go): nothing placed or open.
    with pytest.raises(StorageError):
        await driver.put_contents([("/repo/m/_manifests/a", b"1"), ("/repo/m/_manifests/a/b", b"2")])
    assert not (tmp_path / "repo" / "m").exists()
    assert _temp_files(tmp_path) == []
    assert len(os.listdir("/proc/self/fd")) == open_before


async def test_a_link_written_like_another_shares_its_content_and_is_modified_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount's link given the source's link: a hard link to that file, whose content is on
    disk already, so nothing is written or synced; placed by one rename (with its new
    directories, in a new repository), never leaving a temp name, and modified now (garbage
    collection's grace for young links reads the time)."""
    data = b"sha256:abcd"
    driver = FilesystemDriver(str(tmp_path))
    like = "/repo/a/_layers/sha256/abcd/link"
    await driver.put_content(like, data)
    source = tmp_path / like.lstrip("/")
    os.utime(source, (1000, 1000))
    calls: list[str] = []
    fdatasync, rename = os.fdatasync, os.rename

    def recording_fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        fdatasync(fd)

    def recording_rename(source: str, target: str) -> None:
        calls.append("rename")
        rename(source, target)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    monkeypatch.setattr(os, "rename", recording_rename)
    # A new repository (a private tree), a new digest's directory, and the same link again
    # (a rename between two links to one file does nothing: the temp name must go).
    for path in ("/repo/b/_layers/sha256/abcd/link", "/repo/c/_layers/sha256/abcd/link") * 2:
        del calls[:]
        before = time.time() - 1
        await driver.put_content_unsynced(path, data, like=like)
        target = tmp_path / path.lstrip("/")
        assert calls == ["rename"], f"{path}: {calls}"
        assert os.stat(target).st_ino == os.stat(source).st_ino
        assert target.read_bytes() == data
        assert os.stat(target).st_mtime >= before
        assert _temp_files(tmp_path) == []
    assert os.stat(source).st_nlink == 3


async def test_a_link_is_written_when_the_one_it_is_like_cannot_be_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source missing, holding other bytes, a symbolic link, or at the filesystem's limit of
    links per file: the link is written and synced as without a source, never left out."""
    data = b"sha256:abcd"
    driver = FilesystemDriver(str(tmp_path))
    await driver.put_content("/repo/longer/link", data + b"\n")
    (tmp_path / "repo" / "symbolic").symlink_to(tmp_path / "repo" / "longer" / "link")
    await driver.put_content("/repo/full/link", data)
    cases = {"/repo/missing/link": "/repo/b/1/link", "/repo/longer/link": "/repo/b/2/link"}
    cases |= {"/repo/symbolic": "/repo/b/3/link"}
    for like, path in cases.items():
        await driver.put_content_unsynced(path, data, like=like)
        target = tmp_path / path.lstrip("/")
        assert target.read_bytes() == data
        assert os.stat(target).st_nlink == 1, like
    link = os.link

    def at_the_limit(source: str, target: str) -> None:
        if source.endswith("/repo/full/link"):
            raise OSError(errno.EMLINK, os.strerror(errno.EMLINK), source)
        link(source, target)

    monkeypatch.setattr(os, "link", at_the_limit)
    synced: list[int] = []
    fdatasync = os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        synced.append(fd)
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    await driver.put_content_unsynced("/repo/b/4/link", data, like="/repo/full/link")
    assert (tmp_path / "repo/b/4/link").read_bytes() == data
    assert os.stat(tmp_path / "repo/b/4/link").st_nlink == 1
    assert len(synced) == 1, "a written link is synced before it appears"
    assert _temp_files(tmp_path) == []
