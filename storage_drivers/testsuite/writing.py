"""The suite's small objects and writers."""

from __future__ import annotations

import hashlib
import mmap

import anyio
import pytest

from offload import to_thread

from ..base import InvalidOffset, InvalidPath, PathNotFound, StorageDriver
from .settings import ConformanceSettings
from .support import (
    MIB,
    pattern,
    peak_rss,
    read_all,
    read_unfinished,
    reopened,
    streamed_chunks,
    write_object,
)


class Writing(ConformanceSettings):
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

    async def test_put_content_unsynced_stores_and_replaces_like_put_content(
        self, driver: StorageDriver, root: str
    ) -> None:
        path = f"{root}/unsynced/deeper/link"
        await driver.put_content_unsynced(path, b"sha256:first")
        assert await driver.get_content(path) == b"sha256:first"
        await driver.put_content_unsynced(path, b"sha256:second")
        assert await driver.get_content(path) == b"sha256:second"
        assert await driver.list(f"{root}/unsynced") == [f"{root}/unsynced/deeper"]
        with pytest.raises(InvalidPath):
            await driver.put_content_unsynced(f"{root}/../escape", b"x")

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
                await to_thread(blocking, view)
            expected += view
            assert writer.size == len(expected)
            if seed % 3 == 2:
                writer = await reopened(driver, path, writer, len(expected))
        await writer.commit()
        assert await read_all(driver, path) == bytes(expected)

    @pytest.mark.parametrize(
        "requests",
        [
            # Each request's length, announced; the last one is committed.
            [3 * MIB + 1, 4 * MIB, 1, 12 * MIB + 5, 2 * MIB + 7],
            [MIB, 2 * MIB],
            [6 * MIB, MIB, 0],
            [17 * MIB + 3],
            [5 * MIB - 1, 5 * MIB + 1, 9 * MIB, 3],
        ],
        ids=["crossing-parts", "tail-then-final", "tail-left-at-commit", "one-request", "boundaries"],
    )
    async def test_announced_writes_across_reopenings(
        self, driver: StorageDriver, root: str, requests: list[int]
    ) -> None:
        """Writes announced with ``expect`` (as the registry announces a request's declared
        length), in uneven slices of a reused buffer, through ``blocking_write`` where offered,
        each request continued by a new writer: the content is every byte in order."""
        path = f"{root}/announced"
        buffer = mmap.mmap(-1, 4 * MIB)
        expected = bytearray()
        writer = await driver.writer(path, append=True)
        for number, length in enumerate(requests, 1):
            final = number == len(requests)
            data = pattern(length, number)
            writer.expect(length, final)
            blocking = writer.blocking_write()
            for start in range(0, length, 3 * MIB + 4093):
                piece = data[start : start + 3 * MIB + 4093]
                buffer[: len(piece)] = piece
                view = memoryview(buffer)[: len(piece)]
                if blocking is not None:
                    await to_thread(blocking, view)
                else:
                    await writer.write(view)
            expected += data
            assert writer.size == len(expected)
            if not final:
                writer = await reopened(driver, path, writer, len(expected))
        await writer.commit()
        assert await read_all(driver, path) == bytes(expected)

    async def test_announced_writes_cut_short_keep_a_prefix(self, driver: StorageDriver, root: str) -> None:
        """A request that ends before the bytes it announced (a client gone): the writer keeps a
        prefix of what came, at least what earlier requests stored, and the upload goes on from
        there to the right content."""
        path = f"{root}/cut-short"
        data = pattern(16 * MIB, 3)
        writer = await driver.writer(path, append=True)
        writer.expect(2 * MIB, final=False)
        await writer.write(data[: 2 * MIB])
        writer = await reopened(driver, path, writer, 2 * MIB)
        writer.expect(12 * MIB, final=False)
        await writer.write(data[2 * MIB : 9 * MIB + 5])  # then nothing more
        await writer.close()
        resumed = await driver.writer(path, append=True)
        kept = resumed.size
        assert 2 * MIB <= kept <= 9 * MIB + 5
        resumed.expect(len(data) - kept, final=True)
        await resumed.write(data[kept:])
        await resumed.commit()
        assert await read_all(driver, path) == data

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
