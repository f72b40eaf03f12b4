"""What each manifest refers to, remembered from one garbage collection run to the next.

A manifest is stored under the digest of its content, so what it refers to
(``mark.references_of``) never changes: a run that finds a manifest in the last run's record
does not read and parse it again. The record is one object (``paths.gc_references``) that each
run replaces whole with the manifests it found, so it never holds more than the store. It is
only a shortcut: a record that is missing, torn, of another version, or that does not match
its checksum is ignored (the run reads every manifest, as without it) and the run writes a new
one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from storage_drivers import PathNotFound, StorageDriver, StorageError

from ..errors import RegistryError
from ..references import Digest
from ..storage import paths
from .mark import References

VERSION = 1
"""Raise it when ``references_of`` changes what it finds: a record of another version is
ignored."""

log = logging.getLogger("registry")


async def load(driver: StorageDriver) -> dict[Digest, References]:
    """The last run's record; empty when there is none or it cannot be used."""
    try:
        content = await driver.get_content(paths.gc_references())
    except PathNotFound:
        return {}
    known = decode(content)
    if known is None:
        log.warning(
            "garbage collection: the record of manifests' references is unusable; reading every manifest"
        )
        return {}
    return known


async def save(driver: StorageDriver, manifests: Mapping[Digest, References | None]) -> None:
    """Replace the record with ``manifests`` (those whose content was missing left out). Best
    effort: a run that cannot write it has done its work, and the next one reads more."""
    try:
        await driver.put_content(paths.gc_references(), encode(manifests))
    except StorageError as exc:
        log.warning("garbage collection: the record of manifests' references was not written: %s", exc)


def encode(manifests: Mapping[Digest, References | None]) -> bytes:
    """The record: the SHA-256 of the rest in hex, a newline, then JSON holding each digest once
    (``digests``) and each manifest as [its digest, [blobs], [children], subject or -1], by
    position in ``digests``."""
    index: dict[Digest, int] = {}

    def at(digest: Digest) -> int:
        return index.setdefault(digest, len(index))

    entries = [
        [
            at(digest),
            [at(d) for d in references.blobs],
            [at(d) for d in references.children],
            -1 if references.subject is None else at(references.subject),
        ]
        for digest, references in manifests.items()
        if references is not None
    ]
    document = {"version": VERSION, "digests": [str(d) for d in index], "manifests": entries}
    body = json.dumps(document, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def decode(content: bytes) -> dict[Digest, References] | None:
    """What ``encode`` wrote; None for anything else."""
    checksum, _, body = content.partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != checksum:
        return None  # torn, or not ours
    try:
        document = json.loads(body)
        if document["version"] != VERSION:
            return None
        digests = [Digest.parse(text) for text in document["digests"]]
        known: dict[Digest, References] = {}
        for digest, blobs, children, subject in document["manifests"]:
            known[digests[digest]] = References(
                frozenset(digests[i] for i in blobs),
                frozenset(digests[i] for i in children),
                digests[subject] if subject >= 0 else None,
            )
    except (ValueError, TypeError, KeyError, IndexError, RegistryError):
        return None  # a checksum that matches over a body we did not write
    return known
