"""Which API endpoint a request path names.

Paths are split on ``/`` before percent-decoding, and a segment that decodes to
contain ``/`` keeps its encoded form (so ``a%2Fb`` is an invalid name, never the
repository ``a/b``).

The name grammar applies to the name exactly as sent, so empty segments from
the one after ``v2`` up to the endpoint's words stay in the name, and
``/v2/a//b/tags/list`` or ``/v2//a/tags/list`` are refused as invalid names
instead of being read as ``a/b`` or ``a``. Empty segments outside any name are
ignored: before ``v2``, at the end, and anywhere in the base and catalog paths,
so ``/v2/_catalog/``, ``//v2//_catalog`` and ``/v2/%5Fcatalog`` all name the
catalog and get exactly the decision the canonical path gets.

A repository name may itself contain ``blobs``, ``manifests`` or ``tags``
components; the endpoint is recognised from the end of the path, as
Distribution's routes do.

A ``_dockyard`` component, which no repository name can hold, starts the
registry's own endpoints: ``/v2/_dockyard/<extension>/...`` for the registry,
``/v2/<name>/_dockyard/<extension>/...`` for a repository. Each route and method
translates into the access decision's words (``ACTIONS``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple
from urllib.parse import unquote

from starlette.types import Scope

from ..access import Action


class Route(StrEnum):
    """The endpoints. Each value names its route in log lines and metric labels."""

    BASE = "base"
    CATALOG = "catalog"
    TAGS = "tags"
    MANIFEST = "manifest"
    BLOB = "blob"
    UPLOAD_START = "upload-start"
    UPLOAD = "upload"
    REFERRERS = "referrers"
    REGISTRY_EXTENSION = "registry-extension"
    REPOSITORY_EXTENSION = "repository-extension"


EXTENSION_COMPONENT = "_dockyard"
EXTENSION_ROUTES = frozenset({Route.REGISTRY_EXTENSION, Route.REPOSITORY_EXTENSION})


_READ_OR_DELETE = {"GET": Action.PULL, "HEAD": Action.PULL, "DELETE": Action.DELETE}


def _on_repository(*methods: str) -> dict[str, Action]:
    """GET and HEAD pull, DELETE deletes, every other method pushes."""
    return {method: _READ_OR_DELETE.get(method, Action.PUSH) for method in methods}


_EVERY_METHOD = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE")
ACTIONS: dict[Route, dict[str, Action]] = {
    Route.BASE: {"GET": Action.ENTER, "HEAD": Action.ENTER},
    Route.CATALOG: {"GET": Action.LIST, "HEAD": Action.LIST},
    Route.TAGS: _on_repository("GET", "HEAD"),
    Route.MANIFEST: _on_repository("GET", "HEAD", "PUT", "DELETE"),
    Route.BLOB: _on_repository("GET", "HEAD", "DELETE"),
    Route.UPLOAD_START: _on_repository("POST"),
    Route.UPLOAD: _on_repository("GET", "HEAD", "PATCH", "PUT", "DELETE"),
    Route.REFERRERS: _on_repository("GET", "HEAD"),
    # An extension answers the methods it does not serve itself.
    Route.REGISTRY_EXTENSION: dict.fromkeys(_EVERY_METHOD, Action.EXTENSION),
    Route.REPOSITORY_EXTENSION: _on_repository(*_EVERY_METHOD),
}
"""The methods each route allows, and what each does in the access decision's words. The
decision's target is the repository name, or for a registry-wide extension its name."""


class Match(NamedTuple):  # a tuple: one per request, cheaper to build than a frozen dataclass
    route: Route
    name: str | None = None
    """The repository name as written in the path, not yet validated."""
    argument: str | None = None
    """The reference, digest or upload id, not yet validated; for an extension endpoint the path
    after ``_dockyard/``, starting with the extension's name."""


def _segments(raw_path: bytes) -> list[str]:
    """The decoded segments, without the empty ones before the first and after the last."""
    segments = []
    for raw in raw_path.decode("latin-1").strip("/").split("/"):
        decoded = unquote(raw, errors="strict") if "%" in raw else raw
        segments.append(raw if "/" in decoded else decoded)
    return segments


def match(raw_path: bytes) -> Match | None:
    try:
        segments = _segments(raw_path)
    except UnicodeDecodeError:
        return None
    if segments[0] != "v2":
        return None
    rest = segments[1:]
    words = [segment for segment in rest if segment]
    if not words:
        return Match(Route.BASE)
    if words == ["_catalog"]:
        return Match(Route.CATALOG)
    if EXTENSION_COMPONENT in rest:
        return _extension(rest)
    if len(rest) >= 3:
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


def _extension(rest: list[str]) -> Match | None:
    at = rest.index(EXTENSION_COMPONENT)
    if at == len(rest) - 1:
        return None  # no extension named
    argument = "/".join(rest[at + 1 :])
    if at == 0:
        return Match(Route.REGISTRY_EXTENSION, None, argument)
    return Match(Route.REPOSITORY_EXTENSION, "/".join(rest[:at]), argument)


ROUTE = "dockyard.route"
"""The ASGI scope key under which a request carries its path's match, made once."""


def route_of(scope: Scope) -> Match | None:
    """The route a request's path names, matched by the first layer that asks (the observing
    layer, for its labels, before the API dispatches on it) and kept in the scope for the next."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    kept: tuple[bytes, Match | None] | None = scope.get(ROUTE)
    if kept is not None and kept[0] == raw_path:
        return kept[1]
    found = match(raw_path)
    scope[ROUTE] = (raw_path, found)
    return found
