"""What a stored manifest refers to: its config, layers and index children, and its subject."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..errors import RegistryError
from ..references import HEX_LENGTHS
from ..storage.manifest_format import IMAGE_MANIFESTS, INDEXES, parse_stored_manifest
from .digests import raw

_DIGEST_TEXT = re.compile(r"\b(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\b")


def raw_named(text: str) -> bytes | None:
    """The raw digest (``digests.raw``) of ``text`` written as ``algorithm:hex`` in lowercase
    hex; None for anything else."""
    algorithm, _, encoded = text.partition(":")
    if len(encoded) != HEX_LENGTHS.get(algorithm) or encoded.strip("0123456789abcdef"):
        return None  # (what strip leaves is what is not lowercase hex)
    return bytes.fromhex(encoded)


@dataclass(frozen=True, slots=True)
class References:
    """What a stored manifest refers to, as raw digests (``digests.raw``): the mark and the
    record of references (``known``) work on them, and build a ``Digest`` only for what a run
    reports or deletes."""

    blobs: frozenset[bytes] = frozenset()
    children: frozenset[bytes] = frozenset()
    subject: bytes | None = None


def references_of(content: bytes) -> References:
    """What a stored manifest refers to. A manifest the registry would not accept today (Docker
    schema 1, a foreign format) keeps every digest written anywhere in it: never delete what
    cannot be read. Plain manifests take a shortcut (``_plain_references``)."""
    plain = _plain_references(content)
    if plain is not None:
        return plain
    try:
        manifest = parse_stored_manifest(content)
    except RegistryError:
        return References(frozenset(_digests_in(content)))
    return References(
        frozenset(raw(d.digest) for d in manifest.blobs),
        frozenset(raw(d.digest) for d in manifest.children),
        raw(manifest.subject.digest) if manifest.subject is not None else None,
    )


_PLAIN_FIELDS = frozenset(
    {"schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject", "annotations"}
)


def _plain_references(content: bytes) -> References | None:
    """What an image manifest or index refers to, read without validating every field (a tenth
    of the full parse's time); None for anything unusual, which the full parse then decides.

    It answers only when the digests it names as references are exactly every digest written
    in the manifest, so it never keeps less than the full parse: at most, of a manifest the
    registry would refuse today, it keeps the same digests as children or subject where the
    full parse keeps them as blobs, and children and referrers of kept manifests stay too."""
    try:
        text = content.decode("utf-8")
        document = json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if (
        type(document) is not dict
        or type(document.get("schemaVersion")) is not int
        or document["schemaVersion"] != 2
        or not document.keys() <= _PLAIN_FIELDS
    ):
        return None
    media_type = document.get("mediaType")
    blobs: list[str] | None = []
    children: list[str] | None = []
    if "manifests" in document:
        if (
            "config" in document
            or "layers" in document
            or (media_type is not None and media_type not in INDEXES)
        ):
            return None
        children = _named(document["manifests"])
    else:
        config, layers = document.get("config"), document.get("layers")
        if type(layers) is not list or (media_type is not None and media_type not in IMAGE_MANIFESTS):
            return None
        blobs = _named([config, *layers])
    subject = _named([document["subject"]]) if "subject" in document else []
    if blobs is None or children is None or subject is None:
        return None
    # Every digest written in the text must be one of those named: where each named one is
    # written starts as many digests as the text holds ("sha256:" cannot occur inside another).
    written = text.count("sha256:") + text.count("sha512:")
    if sum(text.count(digest) for digest in {*blobs, *children, *subject}) != written:
        return None  # a digest elsewhere (an annotation, a foreign layer's URL...)
    written_as = (*blobs, *children, *subject)
    digests = [d for d in map(raw_named, written_as) if d is not None]
    if len(digests) != len(written_as):
        return None  # a malformed digest
    return References(
        frozenset(digests[: len(blobs)]),
        frozenset(digests[len(blobs) : len(blobs) + len(children)]),
        digests[-1] if subject else None,
    )


def _named(descriptors: object) -> list[str] | None:
    """The digests of a list of descriptors; None unless each is an object with a digest string
    and no URLs (a non-distributable layer's blob is not stored: the full parse decides)."""
    if type(descriptors) is not list:
        return None
    found = []
    for descriptor in descriptors:
        if type(descriptor) is not dict or "urls" in descriptor:
            return None
        digest = descriptor.get("digest")
        if type(digest) is not str:
            return None
        found.append(digest)
    return found


def _digests_in(content: bytes) -> set[bytes]:
    text = content.decode("utf-8", "replace")
    return {bytes.fromhex(match.group(1).partition(":")[2]) for match in _DIGEST_TEXT.finditer(text)}
