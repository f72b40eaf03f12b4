"""Compact digest collections for a walk over every blob: the marked set and the blob table.

A ``Digest`` costs about 160 bytes (the object and its 64-character hex string); a store of
millions of blobs holds each one here as its raw bytes instead (32 for sha256, 64 for sha512,
which tells the algorithm apart), a blob's size and time in two arrays, and whether it is marked
in one bit. ``bench/gc_memory.py`` measures what a million blobs cost.
"""

from __future__ import annotations

from array import array
from collections.abc import Container, Iterable, Iterator, Mapping, MutableSet

from ..references import Digest

_ALGORITHMS = {32: "sha256", 64: "sha512"}


def raw(digest: Digest) -> bytes:
    return bytes.fromhex(digest.hex)


def from_raw(key: bytes) -> Digest:
    return Digest(_ALGORITHMS[len(key)], key.hex())


class DigestSet(MutableSet[Digest]):
    """A set of digests: a bit per row of ``table`` for the digests it holds (the marked blobs,
    nearly all of them), raw bytes for the others (a manifest whose blob is missing)."""

    __slots__ = ("_bits", "_count", "_others", "_table")

    def __init__(self, table: BlobTable | None = None) -> None:
        self._table = table if table is not None else BlobTable()
        self._bits = bytearray((len(self._table) + 7) // 8)
        self._count = 0
        self._others: set[bytes] = set()

    @classmethod
    def _from_iterable(cls, digests: Iterable[Digest]) -> set[Digest]:  # type: ignore[override]
        """What set operations (``|``, ``&``...) give: a plain set, as small as their result."""
        return set(digests)

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, Digest) and self.holds_raw(raw(digest))

    def holds_raw(self, key: bytes) -> bool:
        row = self._table.row(key)
        if row is None or row >= len(self._bits) * 8:
            return key in self._others
        return bool(self._bits[row >> 3] & (1 << (row & 7)))

    def unmarked(self) -> Iterator[tuple[bytes, int, float]]:
        """``rows()`` of the table for the blobs this set does not hold, each told by its bit
        (not a look-up of its digest: the plan goes over every blob)."""
        bits, others = self._bits, self._others
        limit = len(bits) * 8
        for row, (key, size, modified) in enumerate(self._table.rows()):
            if row < limit:
                if not bits[row >> 3] & (1 << (row & 7)):
                    yield key, size, modified
            elif key not in others:
                yield key, size, modified

    def __iter__(self) -> Iterator[Digest]:
        for key, row in self._table.row_items():
            if row < len(self._bits) * 8 and self._bits[row >> 3] & (1 << (row & 7)):
                yield from_raw(key)
        yield from (from_raw(key) for key in self._others)

    def __len__(self) -> int:
        return self._count + len(self._others)

    def add(self, digest: Digest) -> None:
        self.add_new(raw(digest))

    def add_new(self, key: bytes) -> bool:
        """``add`` by raw digest; whether it was not held before (the mark's one look per
        digest)."""
        row = self._table.row(key)
        if row is None or row >= len(self._bits) * 8:  # not a blob of the table (as it was)
            if key in self._others:
                return False
            self._others.add(key)
            return True
        bits = self._bits
        if bits[row >> 3] & (1 << (row & 7)):
            return False
        bits[row >> 3] |= 1 << (row & 7)
        self._count += 1
        return True

    def add_all(self, keys: Iterable[bytes]) -> None:
        """``add_new`` of each raw digest, in one loop (the mark's whole set at once)."""
        bits, others = self._bits, self._others
        limit = len(bits) * 8
        count = 0
        keys = list(keys)
        for key, row in zip(keys, self._table.rows_of(keys), strict=True):
            if row is None or row >= limit:
                others.add(key)
            elif not bits[row >> 3] & (1 << (row & 7)):
                bits[row >> 3] |= 1 << (row & 7)
                count += 1
        self._count += count

    def discard(self, digest: Digest) -> None:
        key = raw(digest)
        row = self._table.row(key)
        if row is None or row >= len(self._bits) * 8:
            self._others.discard(key)
        elif self._bits[row >> 3] & (1 << (row & 7)):
            self._bits[row >> 3] &= ~(1 << (row & 7)) & 0xFF
            self._count -= 1


class BlobTable(Mapping[Digest, tuple[int, float]]):
    """Every blob's size and storage time, by digest: a row number per raw digest, the sizes
    and times in arrays (a row costs 16 bytes there, not two Python numbers and a tuple)."""

    __slots__ = ("_rows", "_sizes", "_times")

    def __init__(self) -> None:
        self._rows: dict[bytes, int] = {}
        self._sizes = array("q")
        self._times = array("d")

    def __setitem__(self, digest: Digest, value: tuple[int, float]) -> None:
        self.put_raw(raw(digest), *value)

    def put_raw(self, key: bytes, size: int, modified: float) -> None:
        """Set a blob's size and time by its raw digest."""
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = len(self._sizes)
            self._sizes.append(size)
            self._times.append(modified)
        else:
            self._sizes[row], self._times[row] = size, modified

    def put_all_raw(self, keys: list[bytes], sizes: array[int], times: array[float]) -> None:
        """``put_raw`` of each blob (``keys`` distinct: another table's rows), the rows added
        at once (in C) when the table holds none of them (a forked scan's share: its blob
        prefixes are its own)."""
        if not len(keys) == len(sizes) == len(times):
            raise ValueError("a blob's size or time is missing")
        rows = self._rows
        if not rows.keys().isdisjoint(keys):
            for key, size, modified in zip(keys, sizes, times, strict=True):
                self.put_raw(key, size, modified)
            return
        start = len(self._sizes)
        rows.update(zip(keys, range(start, start + len(keys)), strict=True))
        self._sizes.extend(sizes)
        self._times.extend(times)

    def size_from(self, sizes: Mapping[bytes, int]) -> list[bytes]:
        """Set each blob's size to what ``sizes`` (by raw digest) holds, 0 where it holds none;
        the raw digests of those, in row order (the rows' dict keeps it: a row is numbered when
        its key is added)."""
        keys = list(self._rows)
        found = list(map(sizes.get, keys))
        self._sizes = array("q", [0 if size is None else size for size in found])
        return [key for key, size in zip(keys, found, strict=True) if size is None]

    def __getitem__(self, digest: Digest) -> tuple[int, float]:
        row = self._rows[raw(digest)]
        return self._sizes[row], self._times[row]

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, Digest) and raw(digest) in self._rows

    def __iter__(self) -> Iterator[Digest]:
        return (from_raw(key) for key in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def holds_raw(self, key: bytes) -> bool:
        return key in self._rows

    def row(self, key: bytes) -> int | None:
        return self._rows.get(key)

    def rows_of(self, keys: Iterable[bytes]) -> list[int | None]:
        """``row`` of each raw digest, looked up in one call."""
        return list(map(self._rows.get, keys))

    def row_items(self) -> Iterator[tuple[bytes, int]]:
        return iter(self._rows.items())

    def without(self, keys: Container[bytes]) -> BlobTable:
        """A table of the blobs but those whose raw digests ``keys`` holds, in the same order."""
        kept = [(key, row) for key, row in self._rows.items() if key not in keys]
        table = BlobTable()
        table._rows = {key: at for at, (key, _) in enumerate(kept)}
        sizes, times = self._sizes, self._times
        table._sizes = array("q", [sizes[row] for _, row in kept])
        table._times = array("d", [times[row] for _, row in kept])
        return table

    def sizes(self) -> dict[bytes, int]:
        """Every blob's size by raw digest, built in C (the rows' dict is in row order)."""
        return dict(zip(self._rows, self._sizes, strict=True))

    def rows(self) -> Iterator[tuple[bytes, int, float]]:
        """(raw digest, size, time) of every blob, without building a ``Digest`` for each, by
        row number (the order blobs were first put)."""
        sizes, times = self._sizes, self._times
        return ((key, sizes[row], times[row]) for key, row in self._rows.items())
