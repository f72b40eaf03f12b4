"""Test content: one large random file on disk and the digests the workloads need.

The large file is written once per run in 16 MiB pieces and never held in memory. Every push
must upload a blob the registry has not seen (a known digest would let a registry skip work), so
pushes send a region of the file followed by a short unique tail; the digest is the saved hash
state of the region plus the tail, which costs nothing per push.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bench.http import FileBody

PIECE = 16 << 20
TAIL_SIZE = 32

_unique_counter = itertools.count()


def unique_tail() -> bytes:
    """Bytes no other push in this run ends with."""
    return f"bench-tail-{next(_unique_counter):012d}-".encode().ljust(TAIL_SIZE, b".")


def write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as file:
        remaining = size
        while remaining:
            piece = os.urandom(min(PIECE, remaining))
            file.write(piece)
            remaining -= len(piece)


def hash_region(path: Path, offset: int, length: int) -> hashlib._Hash:
    """The sha256 state after ``length`` bytes of ``path`` from ``offset``."""
    state = hashlib.sha256()
    buffer = bytearray(PIECE)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as file:
        file.seek(offset)
        remaining = length
        while remaining:
            got = file.readinto(view[: min(PIECE, remaining)])
            if not got:
                raise OSError(f"{path} is shorter than {offset + length}")
            state.update(view[:got])
            remaining -= got
    return state


@dataclass
class Region:
    """A region of the test file with its precomputed hash state."""

    path: Path
    offset: int
    length: int
    state: hashlib._Hash

    @classmethod
    def of(cls, path: Path, offset: int, length: int) -> Region:
        return cls(path, offset, length, hash_region(path, offset, length))

    @property
    def digest(self) -> str:
        return "sha256:" + self.state.hexdigest()

    def unique_blob(self) -> UniqueBlob:
        tail = unique_tail()
        state = self.state.copy()
        state.update(tail)
        return UniqueBlob(self, tail, "sha256:" + state.hexdigest())


@dataclass
class UniqueBlob:
    """A region plus a unique tail: a blob no registry has stored yet."""

    region: Region
    tail: bytes
    digest: str

    @property
    def size(self) -> int:
        return self.region.length + len(self.tail)

    def body(self, file: BinaryIO, offset: int = 0, length: int | None = None) -> FileBody:
        """Bytes ``offset`` to ``offset + length`` of the blob (the tail comes from memory)."""
        if length is None:
            length = self.size - offset
        end = offset + length
        from_file_end = min(end, self.region.length)
        file_length = max(0, from_file_end - offset)
        tail = self.tail[max(0, offset - self.region.length) : max(0, end - self.region.length)]
        return FileBody(file, self.region.offset + offset, file_length, tail)
