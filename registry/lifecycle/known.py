"""What each manifest refers to and each blob's size, remembered from one garbage collection
run to the next.

Content is stored under its digest, so neither what a manifest refers to
(``manifest_references.references_of``) nor a blob's size ever changes: a run that finds a
manifest in the last run's record does not read and parse it again, and does not stat a blob for
its size (a real run's usage figures need every size). The record is one object
(``paths.gc_references``) that a run replaces whole with what it found, when it found something
the record lacks or the record holds too much that is gone (``worth_writing``), so it never holds
much more than the store. It is only a shortcut: a record that is missing, torn, of another
version, or that does not match its checksum is ignored (the run reads every manifest, as
without it) and the run writes a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from storage_drivers import PathNotFound, StorageDriver, StorageError

from ..references import HEX_LENGTHS
from ..storage import paths
from .inventory import UNSTATED, Inventory
from .manifest_references import References

VERSION = 2
"""Raise it when ``references_of`` changes what it finds, or the encoding changes: a record of
another version is ignored."""

_ALGORITHMS = {length // 2: algorithm for algorithm, length in HEX_LENGTHS.items()}
"""By the length of a raw digest."""

log = logging.getLogger("registry")


@dataclass
class Known:
    references: dict[bytes, References] = field(default_factory=dict)
    """By manifest, as raw digests (``digests.raw``)."""
    sizes: dict[bytes, int] = field(default_factory=dict)
    """By blob, as raw digests (``digests.raw``)."""


async def load(driver: StorageDriver) -> Known:
    """The last run's record; empty when there is none or it cannot be used."""
    try:
        content = await driver.get_content(paths.gc_references())
    except PathNotFound:
        return Known()
    known = decode(content)
    if known is None:
        log.warning(
            "garbage collection: the record of references and sizes is unusable; reading every manifest"
        )
        return Known()
    return known


async def save(driver: StorageDriver, known: Known) -> None:
    """Replace the record. Best effort: a run that cannot write it has done its work, and the
    next one reads more; nor need it wait for the disk (a crash that tears it only costs the
    next run its shortcut)."""
    try:
        await driver.put_many([(paths.gc_references(), encode(known))], durable=False)
    except StorageError as exc:
        log.warning("garbage collection: the record of references and sizes was not written: %s", exc)


def found(inventory: Inventory, recorded: Known) -> Known:
    """The record after a run that found ``inventory`` with ``recorded``: the references of its
    manifests (not those whose content was missing), and the sizes of its blobs, stat-ed or
    recorded before."""
    references = {d: r for d, r in inventory.manifests.items() if r is not None}
    sizes: dict[bytes, int] = {}
    earlier = recorded.sizes
    for key, size, modified in inventory.blobs.rows():
        if modified != UNSTATED:
            sizes[key] = size
        elif key in earlier:
            sizes[key] = earlier[key]
    return Known(references, sizes)


STALE = 8
"""A record whose entries for content a run did not find (deleted since) are more than one in
``STALE`` of it is rewritten even when the run learnt nothing new."""


def worth_writing(record: Known, recorded: Known) -> bool:
    """Whether ``record`` (``found``) should replace ``recorded``: when it holds an entry
    ``recorded`` lacks, or ``recorded`` holds too many the run did not find. Entries of deleted
    content are left otherwise: they are keyed by digest, so they stay true, and a run uses one
    only for content it found (``take_inventory``); the sweep of a store that changed little
    does not re-encode and rewrite the whole record (a tenth of a second and 6 MB for 40,000
    blobs) to drop a few. At most one entry in ``STALE`` is left for content that is gone."""
    if (
        not record.references.keys() <= recorded.references.keys()
        or not record.sizes.keys() <= recorded.sizes.keys()
    ):
        return True
    entries = len(recorded.references) + len(recorded.sizes)
    gone = entries - len(record.references) - len(record.sizes)
    return gone * STALE > entries


def encode(known: Known) -> bytes:
    """The record: the SHA-256 of the rest in hex, a newline, then JSON holding each digest once
    (``digests``: by digest algorithm, the shorter first, their raw digests as one hex string),
    each manifest as [its digest, [blobs], [children], subject or -1] by position in those
    digests taken in order, and by digest algorithm the raw digests of blobs, one hex string,
    with their sizes."""
    seen: dict[bytes, None] = {}
    for key, references in known.references.items():
        seen[key] = None
        seen.update(dict.fromkeys(references.blobs))
        seen.update(dict.fromkeys(references.children))
        if references.subject is not None:
            seen[references.subject] = None
    ordered = sorted(seen, key=len)  # stable: sha256 digests first, each group as first seen
    index = {key: position for position, key in enumerate(ordered)}
    entries = [
        [
            index[key],
            [index[k] for k in references.blobs],
            [index[k] for k in references.children],
            -1 if references.subject is None else index[references.subject],
        ]
        for key, references in known.references.items()
    ]
    document = {
        "version": VERSION,
        "digests": {algorithm: b"".join(keys).hex() for algorithm, keys in _by_algorithm(ordered).items()},
        "manifests": entries,
        "sizes": {
            algorithm: [b"".join(keys).hex(), [known.sizes[key] for key in keys]]
            for algorithm, keys in _by_algorithm(known.sizes).items()
        },
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def _by_algorithm(keys: Iterable[bytes]) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = {}
    for key in keys:
        grouped.setdefault(_ALGORITHMS[len(key)], []).append(key)
    return grouped


def decode(content: bytes) -> Known | None:
    """What ``encode`` wrote; None for anything else."""
    checksum, _, body = content.partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != checksum:
        return None  # torn, or not ours
    try:
        document = json.loads(body)
        if document["version"] != VERSION:
            return None
        digests: list[bytes] = []
        for algorithm in sorted(document["digests"], key=HEX_LENGTHS.__getitem__):
            digests += _split(document["digests"][algorithm], HEX_LENGTHS[algorithm] // 2)
        references: dict[bytes, References] = {}
        none: frozenset[bytes] = frozenset()
        for digest, blobs, children, subject in document["manifests"]:
            references[digests[digest]] = References(
                frozenset([digests[i] for i in blobs]) if blobs else none,
                frozenset([digests[i] for i in children]) if children else none,
                digests[subject] if subject >= 0 else None,
            )
        sizes: dict[bytes, int] = {}
        for algorithm, (keys, values) in document["sizes"].items():
            blobs = _split(keys, HEX_LENGTHS[algorithm] // 2)
            if len(blobs) != len(values) or not all(type(v) is int and v >= 0 for v in values):
                return None
            sizes.update(zip(blobs, values, strict=True))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None  # a checksum that matches over a body this module did not write
    return Known(references, sizes)


def _split(text: str, length: int) -> list[bytes]:
    """Raw digests of ``length`` bytes written as one hex string (``bytes.fromhex`` refuses what
    is not hex; whitespace, which it skips, leaves fewer bytes than the text's half)."""
    joined = bytes.fromhex(text)
    if len(joined) * 2 != len(text) or len(joined) % length:
        raise ValueError("not a list of raw digests")
    return [joined[at : at + length] for at in range(0, len(joined), length)]
