"""A scan of a filesystem split among forked processes (``forks``): the directories of one level
dealt into chunks the processes take in turn, each child's findings handed back in plain
strings, bytes and arrays and taken into the command's inventory. What a chunk is and how it is
scanned is the caller's (``inventory``), passed in as a callable."""

from __future__ import annotations

import asyncio
import os
import pickle
from array import array
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ..references import HEX_LENGTHS, Digest, RepositoryName, Tag
from . import forks

if TYPE_CHECKING:
    from .inventory import Inventory

T = TypeVar("T")

Scan = Callable[["Inventory", list[T]], Coroutine[Any, Any, None]]
"""What scans the trees below a chunk's directories into an inventory."""


CHUNKS_PER_WORKER = 8
"""Pieces of the split level per process: enough that one that is slowed (its core busy, or the
command's own work ``meanwhile``) leaves the rest to the others, few enough that each piece's
levels still fill the driver's batches."""


async def scan_in_shares(
    inventory: Inventory,
    level: list[T],
    workers: int,
    scan: Scan[T],
    meanwhile: Callable[[], Awaitable[None]],
) -> None:
    """The scan below ``level`` by this process and ``workers - 1`` forked children, then what
    each child found taken in. The level's directories are dealt in turn into chunks (blob
    prefixes and repositories alike: each chunk gets some of each), which the processes take
    one at a time from a pipe as each finishes its last: a chunk read by one is gone for the
    others, and once the pipe is empty every chunk was taken. This process runs ``meanwhile``
    first, after the children started. The trees below the level's directories are apart, so
    the chunks together find exactly what one scan of the level would; a child that fails
    fails the scan."""
    chunks = _deal(level, workers * CHUNKS_PER_WORKER)
    tokens = _tokens(len(chunks))

    async def scan_taken(into: Inventory) -> None:
        while taken := os.read(tokens, 1):
            await scan(into, chunks[taken[0]])

    def scan_share() -> bytes:
        part = inventory.part()
        asyncio.run(scan_taken(part))
        return _encode(part)

    children: list[forks.Child] = []
    try:
        children = [forks.start(scan_share) for _ in range(workers - 1)]
        await meanwhile()
        await scan_taken(inventory)
        for child in children:
            _merge(inventory, await forks.result(child))
    finally:
        os.close(tokens)
        for child in children:
            forks.stop(child)


def _deal(level: list[T], count: int) -> list[list[T]]:
    count = min(count, len(level), _MAX_CHUNKS)
    return [level[start::count] for start in range(count)]


_MAX_CHUNKS = 256
"""A chunk's token is one byte."""


def _tokens(count: int) -> int:
    """The read end of a pipe holding one byte per chunk, its write end closed: a read takes
    a chunk, or finds the pipe empty (end of file), never waits."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, bytes(range(count)))  # far less than a pipe holds
    finally:
        os.close(write_end)
    return read_end


_ALGORITHM_OF_LENGTH = {length: algorithm for algorithm, length in HEX_LENGTHS.items()}

_EncodedRepository = tuple[
    str,  # name
    bool,  # listed
    str,  # revisions' hex, joined
    bytes,  # their times, array "d"
    str,  # layer links' hex, joined
    bytes,  # their times
    list[str],  # tags
    bytes,  # their links' times
    list[tuple[str, str]],  # tag history
    list[tuple[str, str]],  # referrers entries
]
_Encoded = tuple[
    list[bytes],  # blobs' raw digests
    bytes,  # their sizes, array "q"
    bytes,  # their times, array "d"
    list[_EncodedRepository],
    list[str],  # foreign names
]


def _encode(part: Inventory) -> bytes:
    """What a share of the scan found, in plain strings, bytes and arrays: pickling a digest or
    a name object each costs several times more than a string (80,000 of them here)."""
    rows = list(part.blobs.rows())
    repositories = [
        (
            str(name),
            repository.listed,
            " ".join(digest.hex for digest in repository.revisions),
            array("d", repository.revisions.values()).tobytes(),
            " ".join(digest.hex for digest in repository.layers),
            array("d", repository.layers.values()).tobytes(),
            [str(tag) for tag in repository.tag_links],
            array("d", repository.tag_links.values()).tobytes(),
            [(str(tag), str(digest)) for tag, digest in repository.tag_history],
            [(str(subject), str(referrer)) for subject, referrer in repository.referrer_entries],
        )
        for name, repository in part.repositories.items()
    ]
    encoded: _Encoded = (
        [key for key, _, _ in rows],
        array("q", [size for _, size, _ in rows]).tobytes(),
        array("d", [modified for _, _, modified in rows]).tobytes(),
        repositories,
        part.foreign,
    )
    return pickle.dumps(encoded, pickle.HIGHEST_PROTOCOL)


def _merge(inventory: Inventory, data: bytes) -> None:
    """Take into ``inventory`` what ``_encode`` wrote of a share."""
    encoded: _Encoded = pickle.loads(data)  # noqa: S301 - written by the run's own child
    keys, sizes, times, repositories, foreign = encoded
    inventory.blobs.put_all_raw(keys, _array("q", sizes), _array("d", times))
    for (
        name,
        listed,
        revisions,
        revision_times,
        layers,
        layer_times,
        tags,
        tag_times,
        history,
        referrers,
    ) in repositories:
        repository = inventory.repository(RepositoryName(name))
        repository.listed |= listed
        repository.revisions.update(zip(_digests(revisions), _array("d", revision_times), strict=True))
        repository.layers.update(zip(_digests(layers), _array("d", layer_times), strict=True))
        repository.tag_links.update(zip(map(Tag, tags), _array("d", tag_times), strict=True))
        repository.tag_history += [(Tag(tag), Digest.parse(digest)) for tag, digest in history]
        repository.referrer_entries += [(Digest.parse(s), Digest.parse(r)) for s, r in referrers]
    inventory.foreign += foreign


def _digests(joined: str) -> list[Digest]:
    algorithm_of = _ALGORITHM_OF_LENGTH
    return [Digest(algorithm_of[len(hex_)], hex_) for hex_ in joined.split()]


def _array(typecode: str, data: bytes) -> array[Any]:
    values = array(typecode)
    values.frombytes(data)
    return values
