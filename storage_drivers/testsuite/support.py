"""Helpers of the conformance suite, also used by drivers' own tests: patterned content, whole
reads, streamed writes."""

from __future__ import annotations

import random
import resource
from collections.abc import AsyncIterator

from ..base import FileWriter, StorageDriver

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
