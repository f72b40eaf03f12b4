"""Which API endpoint a request path names.

Paths are split on ``/`` before percent-decoding, empty segments are ignored, and
a segment that decodes to contain ``/`` keeps its encoded form (so ``a%2Fb`` is
an invalid name, never the repository ``a/b``). ``/v2/_catalog/``,
``//v2//_catalog`` and ``/v2/%5Fcatalog`` therefore all name the catalog, and
get exactly the decision the canonical path gets.

A repository name may itself contain ``blobs``, ``manifests`` or ``tags``
components; the endpoint is recognised from the end of the path, as
Distribution's routes do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote


class Route(Enum):
    BASE = "base"
    CATALOG = "catalog"
    TAGS = "tags"
    MANIFEST = "manifest"
    BLOB = "blob"
    UPLOAD_START = "upload-start"
    UPLOAD = "upload"
    REFERRERS = "referrers"
    REPOSITORY = "repository"
    """``/v2/<name>/_dockyard/repository``: the registry's own, outside the spec's paths."""


ALLOWED_METHODS: dict[Route, frozenset[str]] = {
    Route.BASE: frozenset({"GET", "HEAD"}),
    Route.CATALOG: frozenset({"GET", "HEAD"}),
    Route.TAGS: frozenset({"GET", "HEAD"}),
    Route.MANIFEST: frozenset({"GET", "HEAD", "PUT", "DELETE"}),
    Route.BLOB: frozenset({"GET", "HEAD", "DELETE"}),
    Route.UPLOAD_START: frozenset({"POST"}),
    Route.UPLOAD: frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"}),
    Route.REFERRERS: frozenset({"GET", "HEAD"}),
    Route.REPOSITORY: frozenset({"DELETE"}),
}


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    name: str | None = None
    """The repository name as written in the path, not yet validated."""
    argument: str | None = None
    """The reference, digest or upload id, not yet validated."""


def _segments(raw_path: bytes) -> list[str]:
    segments = []
    for raw in raw_path.decode("latin-1").split("/"):
        if not raw:
            continue
        decoded = unquote(raw, errors="strict") if "%" in raw else raw
        segments.append(raw if "/" in decoded else decoded)
    return segments


def match(raw_path: bytes) -> Match | None:
    try:
        segments = _segments(raw_path)
    except UnicodeDecodeError:
        return None
    if not segments or segments[0] != "v2":
        return None
    rest = segments[1:]
    if not rest:
        return Match(Route.BASE)
    if rest == ["_catalog"]:
        return Match(Route.CATALOG)
    if len(rest) >= 3:
        if rest[-2:] == ["_dockyard", "repository"]:
            return Match(Route.REPOSITORY, "/".join(rest[:-2]))
        if rest[-2:] == ["tags", "list"]:
            return Match(Route.TAGS, "/".join(rest[:-2]))
        if rest[-2:] == ["blobs", "uploads"]:
            return Match(Route.UPLOAD_START, "/".join(rest[:-2]))
        if len(rest) >= 4 and rest[-3:-1] == ["blobs", "uploads"]:
            return Match(Route.UPLOAD, "/".join(rest[:-3]), rest[-1])
        kind = {"manifests": Route.MANIFEST, "blobs": Route.BLOB, "referrers": Route.REFERRERS}.get(rest[-2])
        if kind is not None:
            return Match(kind, "/".join(rest[:-2]), rest[-1])
    return None
