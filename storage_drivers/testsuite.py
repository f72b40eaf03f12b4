"""The storage driver conformance suite: one set of tests every driver must pass.

A driver's test module subclasses ``DriverConformance`` and provides a ``driver``
fixture (pytest with pytest-asyncio; in its strict mode, declare the fixture with
``pytest_asyncio.fixture``)::

    class TestMyDriver(DriverConformance):
        @pytest.fixture
        async def driver(self) -> AsyncIterator[StorageDriver]:
            driver = MyDriver(...)
            yield driver
            await driver.close()

Every test works below its own fresh directory, so one store can serve them all.
Class attributes tune what a driver can do (see ``DriverConformance``). Tests that
stream gigabytes are marked ``slow``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import resource
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import anyio
import pytest
from anyio import to_thread

from .base import FileInfo, FileWriter, InvalidOffset, InvalidPath, PathNotFound, StorageDriver

MIB = 1 << 20

INVALID_PATHS = [
    "",
    "relative/path",
    "/",
    "/a/../b",
    "/..",
    "/a/./b",
    "/a/.",
    "/a/..",
    "/.",
    "//a",
    "/a//b",
    "/a/",
    "/a b",
    "/a\x00b",
    "/a?b",
    "/a\\b",
    "/caf\u00e9",
]


def pattern(size: int, seed: int) -> bytes:
    """``size`` reproducible pseudo-random bytes."""
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, not secrets


def streamed_chunks(size: int, seed: int, chunk: int = MIB) -> AsyncIterator[bytes]:
    """``size`` bytes in ``chunk``-sized pieces, generated on the fly: each piece starts with
    its index, so misordered or repeated pieces change the digest."""
    block = pattern(chunk, seed)

    async def generate() -> AsyncIterator[bytes]:
        for index, start in enumerate(range(0, size, chunk)):
            piece = index.to_bytes(8, "big") + block[8:]
            yield piece[: min(chunk, size - start)]

    return generate()


async def read_all(driver: StorageDriver, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in driver.reader(path, offset, length)])


async def read_unfinished(
    driver: StorageDriver, path: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([bytes(chunk) async for chunk in driver.unfinished_reader(path, offset, length)])


async def write_object(driver: StorageDriver, path: str, data: bytes, piece: int = MIB) -> None:
    writer = await driver.writer(path)
    for start in range(0, len(data), piece):
        await writer.write(data[start : start + piece])
    await writer.commit()


async def reopened(driver: StorageDriver, path: str, writer: FileWriter, size: int) -> FileWriter:
    """Close ``writer`` and continue it in a new one, as the next request of an upload does;
    the new writer must report ``size`` bytes so far."""
    await writer.close()
    resumed = await driver.writer(path, append=True)
    assert resumed.size == size
    return resumed


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class DriverConformance:
    """Subclass as ``Test<Driver>`` and provide the ``driver`` fixture."""

    streamed_size: ClassVar[int] = 5 << 30
    """Size of the large streamed write; a driver that keeps objects in memory lowers it."""
    streamed_memory_limit: ClassVar[int] = 512 * MIB
    """How much the process's peak memory may grow while streaming ``streamed_size`` bytes."""
    redirects: ClassVar[bool] = False
    """Whether ``redirect_url`` gives URLs (which must then download the object)."""
    redirect_expiry: ClassVar[float] = 0.0
    """How long the fixture's driver keeps redirect URLs valid, when it gives them."""
    scans: ClassVar[bool] = False
    """Whether ``scan`` lists keys (else it must answer None)."""
    local_files: ClassVar[bool] = False
    """Whether ``open_local`` gives descriptors of files on this machine (else it answers None)."""

    @pytest.fixture
    def driver(self) -> StorageDriver:
        raise NotImplementedError("a driver's test class provides the driver fixture")

    @pytest.fixture
    def root(self) -> str:
        """A directory of this test's own."""
        return f"/conformance-{secrets.token_hex(6)}"

    # -- small objects ---------------------------------------------------------------

    async def test_put_get_overwrite(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/nested/deeper/object"
        await driver.put_content(path, b"first")
        assert await driver.get_content(path) == b"first"
        await driver.put_content(path, b"second, longer content")
        assert await driver.get_content(path) == b"second, longer content"
        await driver.put_content(path, b"3")
        assert await driver.get_content(path) == b"3"
        assert (await driver.stat(path)).size == 1

    async def test_put_contents_stores_each_object(self, driver: StorageDriver, root: str) -> None:
        await driver.put_content(f"{root}/batch/old", b"before")
        items = [
            (f"{root}/batch/new/a/link", b"first"),
            (f"{root}/batch/old", b"replaced"),
            (f"{root}/batch/new/b/link", b"third"),
        ]
        await driver.put_contents(items)
        for path, data in items:
            assert await driver.get_content(path) == data
        await driver.put_contents([])
        assert await driver.list(f"{root}/batch/new") == [f"{root}/batch/new/a", f"{root}/batch/new/b"]

    async def test_create_content_stores_only_where_nothing_is(
        self, driver: StorageDriver, root: str
    ) -> None:
        path = f"{root}/created/deeper/object"
        if not driver.creates_exclusively:
            with pytest.raises(NotImplementedError):
                await driver.create_content(path, b"first")
            return
        assert await driver.create_content(path, b"first")
        assert not await driver.create_content(path, b"second")
        assert await driver.get_content(path) == b"first"
        await driver.delete(path)
        assert await driver.create_content(path, b"after the delete")
        assert await driver.get_content(path) == b"after the delete"
        # Many at once, where the directory does not exist yet and where it does: one stores.
        contenders = [f"contender {index}".encode() for index in range(16)]
        for contested in (f"{root}/contested/object", f"{root}/created/deeper/sibling"):
            results: dict[int, bool] = {}

            async def create(index: int, path: str, results: dict[int, bool]) -> None:
                results[index] = await driver.create_content(path, contenders[index])

            async with anyio.create_task_group() as group:
                for index in range(len(contenders)):
                    group.start_soon(create, index, contested, results)
            created = [index for index, stored in results.items() if stored]
            assert len(created) == 1, results
            assert await driver.get_content(contested) == contenders[created[0]]
        assert await driver.list(f"{root}/contested") == [f"{root}/contested/object"]

    @pytest.mark.parametrize("durable", [True, False])
    async def test_put_many_stores_each_object(self, driver: StorageDriver, root: str, durable: bool) -> None:
        await driver.put_content(f"{root}/many/old", b"before")
        items = [(f"{root}/many/new/{n}/marker", b"") for n in range(40)]
        items += [(f"{root}/many/old", b"replaced"), (f"{root}/many/other", b"content")]
        await driver.put_many(items, durable=durable)
        for path, data in items:
            assert await driver.get_content(path) == data
        assert len(await driver.list(f"{root}/many/new")) == 40
        await driver.put_many([], durable=durable)
        with pytest.raises(InvalidPath):
            await driver.put_many([(f"{root}/many/../escape", b"")], durable=durable)

    async def test_empty_content(self, driver: StorageDriver, root: str) -> None:
        await driver.put_content(f"{root}/empty", b"")
        assert await driver.get_content(f"{root}/empty") == b""
        info = await driver.stat(f"{root}/empty")
        assert (info.size, info.is_dir) == (0, False)
        assert await read_all(driver, f"{root}/empty") == b""

    async def test_binary_content_round_trips(self, driver: StorageDriver, root: str) -> None:
        data = bytes(range(256)) * 1024 + pattern(3 * MIB + 17, 1)
        await driver.put_content(f"{root}/binary", data)
        assert await driver.get_content(f"{root}/binary") == data
        assert await read_all(driver, f"{root}/binary") == data

    async def test_replace_is_atomic_for_readers(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/replaced"
        versions = [bytes([letter]) * (256 * 1024) for letter in b"abcd"]
        await driver.put_content(path, versions[0])
        seen: list[bytes] = []

        async def replace() -> None:
            for round_ in range(12):
                await driver.put_content(path, versions[round_ % len(versions)])

        async def read() -> None:
            for _ in range(24):
                seen.append(await driver.get_content(path))

        async with anyio.create_task_group() as group:
            group.start_soon(replace)
            group.start_soon(read)
            group.start_soon(read)
        assert all(content in versions for content in seen), "a reader saw a torn object"

    # -- writers ---------------------------------------------------------------------

    async def test_writer_content_hidden_until_commit(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/upload/data"
        writer = await driver.writer(path)
        await writer.write(b"partial")
        await writer.close()
        with pytest.raises(PathNotFound):
            await driver.get_content(path)
        with pytest.raises(PathNotFound):
            await driver.stat(path)
        resumed = await driver.writer(path, append=True)
        await resumed.write(b" and the rest")
        await resumed.commit()
        assert await driver.get_content(path) == b"partial and the rest"

    async def test_one_byte_appends_across_reopenings(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/bytes"
        expected = bytearray()
        writer = await driver.writer(path)
        for index in range(16):
            byte = bytes([index * 13 % 256])
            await writer.write(byte)
            expected += byte
            writer = await reopened(driver, path, writer, len(expected))
        await writer.commit()
        assert await driver.get_content(path) == bytes(expected)

    async def test_large_appends_across_reopenings(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/appended"
        pieces = [pattern(7 * MIB, seed) for seed in range(4)]
        writer = await driver.writer(path)
        assert writer.size == 0
        for number, piece in enumerate(pieces, 1):
            for start in range(0, len(piece), MIB):
                await writer.write(piece[start : start + MIB])
            writer = await reopened(driver, path, writer, number * 7 * MIB)
        await writer.commit()
        whole = b"".join(pieces)
        assert (await driver.stat(path)).size == len(whole)
        stored = hashlib.sha256()
        async for chunk in driver.reader(path):
            stored.update(chunk)
        assert stored.hexdigest() == hashlib.sha256(whole).hexdigest()

    async def test_uneven_appends_and_idle_reopenings(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/uneven"
        sizes = [1, 5 * MIB - 1, 1, 0, 3 * MIB, 5 * MIB, 0, 10 * MIB + 3, 2]
        expected = bytearray()
        writer = await driver.writer(path)
        for seed, size in enumerate(sizes):
            data = pattern(size, seed)
            if data:
                await writer.write(data)
            expected += data
            writer = await reopened(driver, path, writer, len(expected))
        await writer.commit()
        assert await read_all(driver, path) == bytes(expected)

    async def test_reused_page_aligned_buffers_at_any_offset(self, driver: StorageDriver, root: str) -> None:
        """As the registry writes uploads: one page-aligned buffer, refilled after each write,
        sliced at aligned and unaligned starts and lengths, at aligned and unaligned offsets."""
        path = f"{root}/aligned"
        buffer = mmap.mmap(-1, 4 * MIB)
        slices = [(0, 4 * MIB), (0, MIB + 5), (0, 3), (0, 2 * MIB - 3), (4096, MIB), (7, MIB), (0, 300 << 10)]
        expected = bytearray()
        writer = await driver.writer(path)
        for seed, (start, length) in enumerate(slices):
            buffer[:] = pattern(4 * MIB, seed)
            await writer.write(memoryview(buffer)[start : start + length])
            expected += buffer[start : start + length]
            assert writer.size == len(expected)
            if seed % 2:
                writer = await reopened(driver, path, writer, len(expected))
        await writer.commit()
        assert await read_all(driver, path) == bytes(expected)

    async def test_blocking_writes_append_as_writes_do(self, driver: StorageDriver, root: str) -> None:
        """Where a writer offers ``blocking_write``: called in worker threads, mixed with awaited
        writes and reopenings, it appends and counts as ``write`` does."""
        path = f"{root}/blocking"
        writer = await driver.writer(path)
        if writer.blocking_write() is None:
            await writer.cancel()
            return  # writes are asynchronous only, which every other test covers
        buffer = mmap.mmap(-1, 4 * MIB)
        slices = [(0, 4 * MIB), (0, MIB + 5), (4096, MIB), (7, 3), (0, 2 * MIB)]
        expected = bytearray()
        for seed, (start, length) in enumerate(slices):
            buffer[:] = pattern(4 * MIB, seed)
            view = memoryview(buffer)[start : start + length]
            if seed % 2:
                await writer.write(view)
            else:
                blocking = writer.blocking_write()
                assert blocking is not None
                await to_thread.run_sync(blocking, view)
            expected += view
            assert writer.size == len(expected)
            if seed % 3 == 2:
                writer = await reopened(driver, path, writer, len(expected))
        await writer.commit()
        assert await read_all(driver, path) == bytes(expected)

    async def test_fresh_writer_starts_empty(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/restarted"
        writer = await driver.writer(path)
        await writer.write(b"abandoned")
        await writer.close()
        fresh = await driver.writer(path)
        assert fresh.size == 0
        await fresh.write(b"kept")
        await fresh.commit()
        assert await driver.get_content(path) == b"kept"

    async def test_writer_commits_empty_object(self, driver: StorageDriver, root: str) -> None:
        writer = await driver.writer(f"{root}/nothing")
        await writer.close()
        resumed = await driver.writer(f"{root}/nothing", append=True)
        assert resumed.size == 0
        await resumed.commit()
        assert await driver.get_content(f"{root}/nothing") == b""

    async def test_append_without_closed_writer_starts_empty(self, driver: StorageDriver, root: str) -> None:
        first = await driver.writer(f"{root}/never-started", append=True)
        assert first.size == 0
        await first.write(b"new")
        await first.commit()
        assert await driver.get_content(f"{root}/never-started") == b"new"
        committed = f"{root}/committed"
        await write_object(driver, committed, b"final")
        again = await driver.writer(committed, append=True)
        assert again.size == 0, "a committed object is final; appending starts a new one"
        await again.write(b"replacement")
        await again.close()
        assert await driver.get_content(committed) == b"final"
        last = await driver.writer(committed, append=True)
        await last.commit()
        assert await driver.get_content(committed) == b"replacement"

    async def test_unfinished_reads_follow_a_writer(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/followed/data"
        if not driver.unfinished_reads:
            with pytest.raises(NotImplementedError):
                driver.unfinished_reader(path)
            return
        with pytest.raises(PathNotFound):
            await read_unfinished(driver, path)
        data = pattern(9 * MIB + 5, 11)
        writer = await driver.writer(path)
        await writer.write(data[: 4 * MIB])
        assert await read_unfinished(driver, path) == data[: 4 * MIB]
        await writer.write(data[4 * MIB :])
        assert await read_unfinished(driver, path, 3 * MIB, 2 * MIB) == data[3 * MIB : 5 * MIB]
        assert await read_unfinished(driver, path, 4 * MIB) == data[4 * MIB :]
        with pytest.raises(InvalidOffset):
            await read_unfinished(driver, path, len(data) + 1)
        with pytest.raises(PathNotFound):
            await driver.stat(path)  # still not the committed object
        await writer.commit()
        with pytest.raises(PathNotFound):
            await read_unfinished(driver, path)
        assert await read_all(driver, path) == data
        cancelled = await driver.writer(f"{root}/followed/cancelled")
        await cancelled.write(b"abandoned")
        await cancelled.cancel()
        with pytest.raises(PathNotFound):
            await read_unfinished(driver, f"{root}/followed/cancelled")

    async def test_cancel_discards(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/cancelled"
        writer = await driver.writer(path)
        await writer.write(pattern(6 * MIB, 7))
        await writer.close()
        resumed = await driver.writer(path, append=True)
        await resumed.write(b"more")
        await resumed.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat(path)
        assert (await driver.writer(path, append=True)).size == 0

    async def test_commit_replaces_existing_object(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/replaced-by-writer"
        await driver.put_content(path, b"old content")
        await write_object(driver, path, b"new")
        assert await driver.get_content(path) == b"new"

    @pytest.mark.slow
    async def test_streamed_write_of_gigabytes(self, driver: StorageDriver, root: str) -> None:
        """Stream ``streamed_size`` bytes through reopened writers; digest and memory stay right."""
        path, moved = f"{root}/big/data", f"{root}/blobs/big"
        size, written = self.streamed_size, hashlib.sha256()
        rss_before = peak_rss()
        writer = await driver.writer(path)
        position, reopen_at = 0, size // 3
        async for chunk in streamed_chunks(size, seed=5):
            await writer.write(chunk)
            written.update(chunk)
            position += len(chunk)
            if position >= reopen_at:  # as the next request of a chunked upload would
                writer = await reopened(driver, path, writer, position)
                reopen_at += size // 3
        await writer.commit()
        try:
            await driver.move(path, moved)
            assert (await driver.stat(moved)).size == size
            stored = hashlib.sha256()
            async for chunk in driver.reader(moved):
                stored.update(chunk)
            assert stored.hexdigest() == written.hexdigest()
            assert peak_rss() - rss_before < self.streamed_memory_limit
        finally:
            await driver.delete(root)

    # -- readers ---------------------------------------------------------------------

    async def test_reader_offsets_and_lengths(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/ranged"
        data = pattern(3 * MIB + 5, 3)
        await driver.put_content(path, data)
        assert await read_all(driver, path, 0) == data
        assert await read_all(driver, path, MIB + 1) == data[MIB + 1 :]
        assert await read_all(driver, path, 10, 100) == data[10:110]
        assert await read_all(driver, path, len(data) - 3, 100) == data[-3:]
        assert await read_all(driver, path, 5, 0) == b""
        assert await read_all(driver, path, len(data)) == b""

    async def test_reader_rejects_offsets_beyond_the_end(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/short"
        await driver.put_content(path, b"0123456789")
        with pytest.raises(InvalidOffset):
            await read_all(driver, path, 11)
        with pytest.raises(InvalidOffset):
            await read_all(driver, path, 11, 0)
        with pytest.raises(InvalidOffset):
            await read_all(driver, path, -1)
        with pytest.raises(InvalidOffset):
            await read_all(driver, path, 0, -1)
        await driver.put_content(f"{root}/empty", b"")
        with pytest.raises(InvalidOffset):
            await read_all(driver, f"{root}/empty", 1)

    async def test_concurrent_random_offset_readers(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/shared"
        data = pattern(9 * MIB, 11)
        await write_object(driver, path, data)
        failures: list[tuple[int, int]] = []

        async def read_ranges(seed: int) -> None:
            rng = random.Random(seed)  # noqa: S311 - test data
            for _ in range(5):
                offset = rng.randrange(len(data))
                length = rng.randrange(1, 2 * MIB)
                if await read_all(driver, path, offset, length) != data[offset : offset + length]:
                    failures.append((offset, length))

        async with anyio.create_task_group() as group:
            for seed in range(10):
                group.start_soon(read_ranges, seed)
        assert failures == []

    async def test_concurrent_writers(self, driver: StorageDriver, root: str) -> None:
        contents = {
            f"{root}/writers/{index}/data": pattern((index % 4 + 1) * 2 * MIB + index, index)
            for index in range(32)
        }

        async def write(path: str, data: bytes) -> None:
            writer = await driver.writer(path)
            for start in range(0, len(data), 256 * 1024):
                await writer.write(data[start : start + 256 * 1024])
            await writer.close()
            writer = await driver.writer(path, append=True)
            await writer.commit()

        async with anyio.create_task_group() as group:
            for path, data in contents.items():
                group.start_soon(write, path, data)
        for path, data in contents.items():
            assert await driver.get_content(path) == data
        assert len(await driver.list(f"{root}/writers")) == 32

    # -- namespace -------------------------------------------------------------------

    async def test_stat_files_and_directories(self, driver: StorageDriver, root: str) -> None:
        before = time.time()
        await driver.put_content(f"{root}/dir/sub/file", b"12345")
        info = await driver.stat(f"{root}/dir/sub/file")
        assert (info.path, info.size, info.is_dir) == (f"{root}/dir/sub/file", 5, False)
        assert before - 60 < info.modified < time.time() + 60
        for directory in (f"{root}/dir", f"{root}/dir/sub"):
            assert (await driver.stat(directory)).is_dir
        with pytest.raises(PathNotFound):
            await driver.stat(f"{root}/di")
        with pytest.raises(PathNotFound):
            await driver.stat(f"{root}/dir/sub/file/below")
        assert await driver.file_size(f"{root}/dir/sub/file") == 5
        for absent in (f"{root}/dir", f"{root}/dir/sub", f"{root}/di", f"{root}/dir/sub/file/below"):
            assert await driver.file_size(absent) is None

    async def test_list_direct_children(self, driver: StorageDriver, root: str) -> None:
        for path in ("a/file", "a/dir/deep/file", "a/other", "a-b/x", "ab", "ab2/y"):
            await driver.put_content(f"{root}/{path}", b"x")
        assert sorted(await driver.list(f"{root}/a")) == [
            f"{root}/a/dir",
            f"{root}/a/file",
            f"{root}/a/other",
        ]
        assert sorted(await driver.list(root)) == [f"{root}/{name}" for name in ("a", "a-b", "ab", "ab2")]
        assert await driver.list(f"{root}/a/dir") == [f"{root}/a/dir/deep"]
        with pytest.raises(PathNotFound):
            await driver.list(f"{root}/missing")
        with pytest.raises(PathNotFound):
            await driver.list(f"{root}/a/di")

    async def test_list_separates_prefix_siblings(self, driver: StorageDriver, root: str) -> None:
        tags = f"{root}/repositories/library/math/_manifests/tags"
        await driver.put_content(f"{tags}/0.1.2/current/link", b"sha256:a")
        await driver.put_content(f"{tags}/0.1.20/current/link", b"sha256:b")
        await driver.put_content(f"{root}/repositories/library/math-voila/_layers/x/link", b"c")
        assert await driver.list(f"{tags}/0.1.2") == [f"{tags}/0.1.2/current"]
        assert sorted(await driver.list(tags)) == [f"{tags}/0.1.2", f"{tags}/0.1.20"]
        assert await driver.list(f"{root}/repositories/library/math") == [
            f"{root}/repositories/library/math/_manifests"
        ]

    async def test_list_many_children(self, driver: StorageDriver, root: str) -> None:
        """More children than one S3 listing page (1000) holds."""
        names = [f"{index:05d}" for index in range(1100)]
        limiter = anyio.CapacityLimiter(16)

        async def put(name: str) -> None:
            async with limiter:
                await driver.put_content(f"{root}/many/{name}/link", b"x")

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(put, name)
        assert sorted(await driver.list(f"{root}/many")) == [f"{root}/many/{name}" for name in names]
        assert len([info async for info in driver.walk(f"{root}/many")]) == len(names)

    async def test_list_pages_in_lexical_order(self, driver: StorageDriver, root: str) -> None:
        """Pages are cut from the children in name order, for any ``after`` a client may send:
        on S3 a directory ``v1`` is listed as ``v1/``, after ``v1-rc1`` and ``v1.1``."""
        directories = [
            "1.0",
            "1.0-alpha",
            "1.0.1",
            "B",
            "_x",
            "a",
            "a-b",
            "a.b",
            "a0",
            "ab",
            "v1",
            "v1-rc1",
            "v1.1",
        ]
        files = ["a-c", "v1.0"]
        for name in directories:
            await driver.put_content(f"{root}/{name}/current/link", b"x")
        for name in files:
            await driver.put_content(f"{root}/{name}", b"x")
        names = sorted(directories + files)
        assert await driver.list(root) == [f"{root}/{name}" for name in names]
        probes = [*names, *(name + suffix for name in names for suffix in ("-", "/", "~", "\x00", "\u00e9"))]
        for after in [None, "", "\x00", "~", *probes]:
            expected = [f"{root}/{name}" for name in names if after is None or name > after]
            for limit in (1, 5, None):
                listed = await driver.list(root, after=after, limit=limit)
                assert listed == expected[:limit], (after, limit)
        with pytest.raises(ValueError, match="limit"):
            await driver.list(root, limit=0)

    async def test_list_pages_through_a_large_directory(self, driver: StorageDriver, root: str) -> None:
        """More children than one S3 listing page, all sorting before the directory ``d`` in
        S3's key order: the first page still starts with ``d``."""
        names = ["d", *(f"d-{index:04d}" for index in range(1050))]
        limiter = anyio.CapacityLimiter(16)

        async def put(name: str) -> None:
            async with limiter:
                await driver.put_content(f"{root}/big/{name}/link", b"x")

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(put, name)
        big = f"{root}/big"
        assert await driver.list(big, limit=2) == [f"{big}/d", f"{big}/d-0000"]
        assert await driver.list(big, after="d-1048", limit=5) == [f"{big}/d-1049"]
        assert await driver.list(big, after="d-1049", limit=5) == []
        walked: list[str] = []
        after = None
        while page := await driver.list(big, after=after, limit=300):
            walked += page
            after = page[-1].rsplit("/", 1)[1]
        assert walked == [f"{big}/{name}" for name in names]
        assert await driver.list(big) == walked

    async def test_scan_lists_keys_at_any_depth_in_byte_order(self, driver: StorageDriver, root: str) -> None:
        """Objects below a path at any depth, in the byte order of their keys (``a-b/x`` before
        ``a/x``, unlike names), from any ``after``, a page at a time; or None, always."""
        names = [
            "a/_m/x",
            "a-b/y",
            "a.b/z",
            "a/0/x",
            "a/b/c/d",
            "b",
            "b0/e",
            *(f"m/{i:04d}" for i in range(1010)),
        ]
        limiter = anyio.CapacityLimiter(16)

        async def put(name: str) -> None:
            async with limiter:
                await driver.put_content(f"{root}/top/{name}", b"x")

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(put, name)
        await driver.put_content(f"{root}/top-sibling", b"not below top")
        top = f"{root}/top"
        scanned = await driver.scan(top, limit=2000)
        if not self.scans:
            assert scanned is None
            assert await driver.scan(top, after="a", limit=1) is None
            return
        ordered = [f"{top}/{name}" for name in sorted(names)]  # ASCII: code point order is byte order
        assert scanned == ordered
        for after in ["", "a", "a/", "a-b/y", "a/_", "a/_~", "b", "m/0999", "m/1009", "z", "\x00", "\u00e9"]:
            expected = [f"{top}/{name}" for name in sorted(names) if name > after]
            for limit in (1, 3, 1000):
                assert await driver.scan(top, after=after, limit=limit) == expected[:limit], (after, limit)
        walked: list[str] = []
        while page := await driver.scan(top, after=walked[-1][len(top) + 1 :] if walked else "", limit=400):
            walked += page
        assert walked == ordered
        assert await driver.scan(f"{root}/missing") == []
        with pytest.raises(ValueError, match="limit"):
            await driver.scan(top, limit=0)

    async def test_walk(self, driver: StorageDriver, root: str) -> None:
        files = {"a/1": b"1", "a/b/2": b"22", "a/b/c/3": b"333"}
        for name, data in files.items():
            await driver.put_content(f"{root}/{name}", data)
        await driver.put_content(f"{root}/ab/sibling", b"no")
        found = {info.path: info async for info in driver.walk(f"{root}/a")}
        assert sorted(found) == sorted(f"{root}/{name}" for name in files)
        assert all(isinstance(info, FileInfo) and not info.is_dir for info in found.values())
        assert {path: info.size for path, info in found.items()} == {
            f"{root}/{name}": len(data) for name, data in files.items()
        }
        with pytest.raises(PathNotFound):
            [info async for info in driver.walk(f"{root}/missing")]

    async def test_batched_reads(self, driver: StorageDriver, root: str) -> None:
        await driver.put_content(f"{root}/d/one/link", b"1")
        await driver.put_content(f"{root}/d/two/link", b"22")
        await driver.put_content(f"{root}/d-sibling", b"x")
        wanted = [f"{root}/d/two/link", f"{root}/d/missing/link", f"{root}/d/one/link"]
        assert await driver.get_many(wanted) == [b"22", None, b"1"]
        stats = await driver.stat_many(wanted)
        assert [None if info is None else (info.path, info.size) for info in stats] == [
            (f"{root}/d/two/link", 2),
            None,
            (f"{root}/d/one/link", 1),
        ]
        directories = [f"{root}/d", f"{root}/missing", f"{root}/d/one"]
        assert await driver.list_many(directories) == [
            [f"{root}/d/one", f"{root}/d/two"],
            None,
            [f"{root}/d/one/link"],
        ]
        assert await driver.get_many([]) == []
        assert await driver.stat_many([]) == []

    async def test_delete_many(self, driver: StorageDriver, root: str) -> None:
        for name in ("a/1/link", "a/2/link", "a/2/other", "a/3/link", "a-b/link"):
            await driver.put_content(f"{root}/{name}", b"x")
        await driver.delete_many([f"{root}/a/1/link", f"{root}/a/2/link", f"{root}/a/gone/link"])
        await driver.delete_many([])
        # The emptied directory goes with its object; one still holding something stays.
        assert await driver.list(f"{root}/a") == [f"{root}/a/2", f"{root}/a/3"]
        assert await driver.get_many([f"{root}/a/2/other", f"{root}/a/3/link", f"{root}/a-b/link"]) == [
            b"x",
            b"x",
            b"x",
        ]
        with pytest.raises(InvalidPath):
            await driver.delete_many([f"{root}/a/3/link", "../escape"])
        assert await driver.get_content(f"{root}/a/3/link") == b"x"  # nothing deleted: paths checked first
        many = [f"{root}/many/{index:04d}" for index in range(1500)]  # more than one S3 request
        async with anyio.create_task_group() as group:
            for path in many:
                group.start_soon(driver.put_content, path, b"m")
        await driver.delete_many(many)
        with pytest.raises(PathNotFound):
            await driver.list(f"{root}/many")

    async def test_move_over_existing(self, driver: StorageDriver, root: str) -> None:
        source, destination = f"{root}/uploads/1/data", f"{root}/blobs/ab/data"
        await driver.put_content(source, b"new content")
        await driver.put_content(destination, b"old")
        await driver.move(source, destination)
        assert await driver.get_content(destination) == b"new content"
        with pytest.raises(PathNotFound):
            await driver.get_content(source)
        await driver.put_content(source, b"to a fresh directory")
        await driver.move(source, f"{root}/fresh/dir/data", size=20)  # the caller knows the size
        assert await driver.get_content(f"{root}/fresh/dir/data") == b"to a fresh directory"

    async def test_move_large_object(self, driver: StorageDriver, root: str) -> None:
        data = pattern(12 * MIB + 1, 9)
        await write_object(driver, f"{root}/large", data)
        await driver.put_content(f"{root}/moved", b"replaced")
        await driver.move(f"{root}/large", f"{root}/moved")
        assert await read_all(driver, f"{root}/moved") == data
        await driver.move(f"{root}/moved", f"{root}/known", size=len(data))
        assert await read_all(driver, f"{root}/known") == data
        with pytest.raises(PathNotFound):
            await driver.stat(f"{root}/large")

    async def test_delete_leaves_prefix_siblings(self, driver: StorageDriver, root: str) -> None:
        for name in ("a/x", "a/y/z", "ab/c", "a-b", "a.b/c", "abc"):
            await driver.put_content(f"{root}/{name}", b"x")
        await driver.delete(f"{root}/a")
        for gone in ("a", "a/x", "a/y/z", "a/y"):
            with pytest.raises(PathNotFound):
                await driver.stat(f"{root}/{gone}")
        for kept in ("ab/c", "a-b", "a.b/c", "abc"):
            assert await driver.get_content(f"{root}/{kept}") == b"x"
        await driver.delete(f"{root}/a-b")
        with pytest.raises(PathNotFound):
            await driver.get_content(f"{root}/a-b")
        assert await driver.get_content(f"{root}/ab/c") == b"x"

    async def test_delete_directory_with_open_writer(self, driver: StorageDriver, root: str) -> None:
        upload = f"{root}/_uploads/one"
        await driver.put_content(f"{upload}/startedat", b"2024-01-01T00:00:00Z")
        writer = await driver.writer(f"{upload}/data")
        await writer.write(pattern(6 * MIB, 2))
        await writer.close()
        await driver.delete(upload)
        with pytest.raises(PathNotFound):
            await driver.stat(upload)
        assert (await driver.writer(f"{upload}/data", append=True)).size == 0

    # -- errors ----------------------------------------------------------------------

    async def test_missing_paths(self, driver: StorageDriver, root: str) -> None:
        missing = f"{root}/missing/object"
        await driver.put_content(f"{root}/present", b"x")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get_content": lambda: driver.get_content(missing),
            "reader": lambda: read_all(driver, missing),
            "ranged reader": lambda: read_all(driver, missing, 1, 1),
            "stat": lambda: driver.stat(missing),
            "list": lambda: driver.list(missing),
            "list page": lambda: driver.list(missing, after="a", limit=5),
            "move": lambda: driver.move(missing, f"{root}/elsewhere"),
            "move of a known size": lambda: driver.move(missing, f"{root}/elsewhere", size=1),
            "delete": lambda: driver.delete(missing),
            "walk": lambda: _drain(driver.walk(missing)),
        }
        assert await _misbehaving(calls, PathNotFound) == {}
        with pytest.raises(PathNotFound):
            await driver.stat(f"{root}/elsewhere")

    @pytest.mark.parametrize("bad", INVALID_PATHS)
    async def test_invalid_paths(self, driver: StorageDriver, root: str, bad: str) -> None:
        good = f"{root}/good"
        await driver.put_content(good, b"x")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get_content": lambda: driver.get_content(bad),
            "put_content": lambda: driver.put_content(bad, b"x"),
            "reader": lambda: read_all(driver, bad),
            "writer": lambda: driver.writer(bad),
            "writer(append)": lambda: driver.writer(bad, append=True),
            "move from": lambda: driver.move(bad, f"{root}/elsewhere"),
            "move to": lambda: driver.move(good, bad),
            "delete": lambda: driver.delete(bad),
            "redirect_url": lambda: driver.redirect_url(bad),
            "open_local": lambda: driver.open_local(bad),
            "stat": lambda: driver.stat(bad),
            "list": lambda: driver.list(bad),
            "list page": lambda: driver.list(bad, after="a", limit=5),
            "walk": lambda: _drain(driver.walk(bad)),
            "purge_incomplete": lambda: driver.purge_incomplete(bad, 0),
        }
        assert await _misbehaving(calls, InvalidPath) == {}
        assert await driver.get_content(good) == b"x"

    # -- local files -----------------------------------------------------------------

    async def test_open_local(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/blob"
        data = pattern(MIB + 3, 5)
        await driver.put_content(path, data)
        fd = await driver.open_local(path)
        if not self.local_files:
            assert fd is None
            return
        assert fd is not None
        try:
            assert os.pread(fd, len(data) + 1, 0) == data
            with pytest.raises(OSError, match="Bad file descriptor"):  # read-only
                os.pwrite(fd, b"x", 0)
        finally:
            os.close(fd)
        with pytest.raises(PathNotFound):
            await driver.open_local(f"{root}/missing")

    # -- redirects -------------------------------------------------------------------

    async def test_redirect_url(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/blob"
        data = pattern(2 * MIB + 3, 4)
        await driver.put_content(path, data)
        url = await driver.redirect_url(path)
        if not self.redirects:
            assert url is None
            return
        import httpx  # noqa: PLC0415 - only drivers that redirect need it

        assert url is not None
        issued = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(url)
            assert response.status_code == 200
            assert response.content == data
            ranged = await client.get(url, headers={"Range": "bytes=10-19"})
            assert ranged.content == data[10:20]
            await anyio.sleep(max(0.0, issued + self.redirect_expiry + 1.5 - time.monotonic()))
            expired = await client.get(url)
            assert expired.status_code == 403


async def _misbehaving(
    calls: dict[str, Callable[[], Awaitable[Any]]], expected: type[Exception]
) -> dict[str, str]:
    """What each call that did not raise ``expected`` did instead."""
    wrong: dict[str, str] = {}
    for name, call in calls.items():
        try:
            await call()
        except expected:
            continue
        except Exception as exc:  # reported as the test failure
            wrong[name] = f"raised {exc!r}"
        else:
            wrong[name] = "returned"
    return wrong


async def _drain(items: AsyncIterator[Any]) -> None:
    async for _ in items:
        pass
