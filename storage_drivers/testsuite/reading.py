"""The suite's readers and namespace: offsets, concurrent reads, listings, walks, deletes, moves."""

from __future__ import annotations

import random
import time

import anyio
import pytest

from ..base import FileInfo, InvalidOffset, InvalidPath, PathNotFound, StorageDriver
from .settings import ConformanceSettings
from .support import MIB, pattern, read_all, write_object


class Reading(ConformanceSettings):
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

    async def test_sized_reader_answers_the_size_with_the_bytes(
        self, driver: StorageDriver, root: str
    ) -> None:
        path = f"{root}/sized"
        data = pattern(3 * MIB + 5, 4)
        await driver.put_content(path, data)
        end = len(data)
        for offset, length in ((0, None), (MIB + 1, None), (10, 100), (end - 3, 100), (end, None), (5, 0)):
            size, chunks = await driver.sized_reader(path, offset, length)
            assert size == end
            expected = data[offset:] if length is None else data[offset : offset + length]
            assert b"".join([bytes(chunk) async for chunk in chunks]) == expected, (offset, length)
        with pytest.raises(InvalidOffset):
            await driver.sized_reader(path, end + 1)
        with pytest.raises(InvalidOffset):
            await driver.sized_reader(path, -1)
        with pytest.raises(PathNotFound):
            await driver.sized_reader(f"{root}/absent")
        await driver.put_content(f"{root}/empty", b"")
        size, chunks = await driver.sized_reader(f"{root}/empty")
        assert size == 0
        assert [chunk async for chunk in chunks if chunk] == []
        # Closed before its first chunk, as a registry closes a blob the repository turns out
        # not to hold; and after one.
        for _ in range(20):
            size, chunks = await driver.sized_reader(path, 7)
            await chunks.aclose()  # type: ignore[attr-defined]
        size, chunks = await driver.sized_reader(path, 7)
        first = bytes(await anext(chunks))
        assert first
        assert data[7:].startswith(first)
        await chunks.aclose()  # type: ignore[attr-defined]
        assert await read_all(driver, path, 1) == data[1:]

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

    async def test_delete_takes_the_directory_it_empties(self, driver: StorageDriver, root: str) -> None:
        for name in ("upload/one/startedat", "upload/two/startedat", "upload/two/data"):
            await driver.put_content(f"{root}/{name}", b"x")
        await driver.delete(f"{root}/upload/one/startedat")
        await driver.delete(f"{root}/upload/two/startedat")
        assert await driver.list(f"{root}/upload") == [f"{root}/upload/two"]
        assert await driver.get_content(f"{root}/upload/two/data") == b"x"

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

    async def test_racing_deletes_of_one_object(self, driver: StorageDriver, root: str) -> None:
        """Two deleters of one object at once: with ``deletes_exactly`` exactly one is told it
        deleted it and the other PathNotFound, as is a delete of what was never there; a driver
        without the flag may tell both it deleted it, but never neither, and never fails else."""
        with pytest.raises(PathNotFound):
            await driver.delete(f"{root}/never/link")

        async def delete(path: str, done: list[bool]) -> None:
            try:
                await driver.delete(path)
            except PathNotFound:
                return
            done.append(True)

        for number in range(20):
            path = f"{root}/raced/{number}/link"
            await driver.put_content(path, b"sha256:" + b"0" * 64)
            done: list[bool] = []
            async with anyio.create_task_group() as group:
                group.start_soon(delete, path, done)
                group.start_soon(delete, path, done)
            assert done, f"round {number}: neither deleter deleted it"
            if driver.deletes_exactly:
                assert len(done) == 1, f"round {number}: both deleters were told they deleted it"
            with pytest.raises(PathNotFound):
                await driver.stat(path)
            with pytest.raises(PathNotFound):
                await driver.delete(path)

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
