"""A scan of a filesystem split among forked processes (``forks``): the directories of one level
dealt into shares, each share's findings handed back in plain strings, bytes and arrays, and
taken into the command's inventory. What a share is and how it is scanned is the caller's
(``inventory``), passed in as a callable."""

from __future__ import annotations

import asyncio
import functools
import pickle
from array import array
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ..references import HEX_LENGTHS, Digest, RepositoryName, Tag
from . import forks

if TYPE_CHECKING:
    from .inventory import Inventory

T = TypeVar("T")

Scan = Callable[["Inventory", list[T]], Coroutine[Any, Any, None]]
"""What scans the trees below a share's directories into an inventory."""


async def scan_in_shares(inventory: Inventory, level: list[T], workers: int, scan: Scan[T]) -> None:
    """The scan below ``level``, its directories dealt in turn into ``workers`` shares (blob
    prefixes and repositories alike: each share gets some of each): this process scans the
    first share while forked children scan the others, then takes in what each found. The
    trees below the level's directories are apart, so the shares together find exactly what one
    scan of the level would; a share that fails fails the scan."""
    shares = [share for share in (level[start::workers] for start in range(workers)) if share]

    def scan_share(share: list[T]) -> bytes:
        part = inventory.part()
        asyncio.run(scan(part, share))
        return _encode(part)

    children: list[forks.Child] = []
    try:
        children = [forks.start(functools.partial(scan_share, share)) for share in shares[1:]]
        await scan(inventory, shares[0])
        for child in children:
            _merge(inventory, await forks.result(child))
    finally:
        for child in children:
            forks.stop(child)


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
    put_raw = inventory.blobs.put_raw
    for key, size, modified in zip(keys, _array("q", sizes), _array("d", times), strict=True):
        put_raw(key, size, modified)
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
