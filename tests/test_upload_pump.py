"""How an upload's body reaches the storage writer: in order, hashed, in bounded batches."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Sequence

from registry.storage.uploads import MAX_BATCH, MIN_BATCH, SMALL_PIECE, _pump
from storage_drivers.inmemory import InMemoryDriver


async def test_pieces_of_every_size_arrive_whole_hashed_and_in_bounded_batches() -> None:
    rng = random.Random(7)
    sizes = [1, 0, SMALL_PIECE - 1, SMALL_PIECE, 3, 300 << 10, 2 * MAX_BATCH + 11]
    # Mostly tiny pieces (a slow or hostile client), now and then a large one.
    sizes += [rng.choice([1, 17, 90, 4096, 1, 17, 90, SMALL_PIECE + 1]) for _ in range(60_000)]
    pieces = [rng.randbytes(size) for size in sizes]
    driver = InMemoryDriver()
    writer = await driver.writer("/upload/data")
    batches: list[tuple[int, int]] = []  # (pieces, bytes) of each write
    write_pieces = writer.write_pieces

    async def counting(batch: Sequence[bytes | bytearray | memoryview]) -> None:
        batches.append((len(batch), sum(len(piece) for piece in batch)))
        await write_pieces(batch)

    writer.write_pieces = counting  # type: ignore[method-assign]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    asked: list[int] = []

    def batch_size() -> int:  # as the number of uploads in flight changes
        asked.append(MAX_BATCH if len(asked) % 3 == 0 else MIN_BATCH)
        return asked[-1]

    hasher = hashlib.sha256()
    await _pump(body(), writer, hasher, batch_size)
    await writer.commit()

    whole = b"".join(pieces)
    assert await driver.get_content("/upload/data") == whole
    assert hasher.hexdigest() == hashlib.sha256(whole).hexdigest()
    # Small pieces are joined, so a batch holds at most about two pieces per SMALL_PIECE of data.
    assert max(count for count, _ in batches) <= 2 * MAX_BATCH // SMALL_PIECE + 2
    assert len(batches) > 3
    assert all(size >= wanted for (_, size), wanted in zip(batches[:-1], asked, strict=False)), (
        "a batch was written before it reached the size asked for"
    )
    assert any(size < MAX_BATCH for _, size in batches[:-1]), "the size was not asked anew per batch"
