"""The ASGI layer that sees what manifest and blob requests did, and queues their events.

It sits inside the observing layer (``registry.observability.exchange``), so the access log,
the metrics and the audit log see the status the client finally got, a refusal included; the
scope carries the request id, the client address a trusted proxy forwarded and the caller's
account. What counts as a write is ``write_of``'s rule, the one the audit log follows.

A successful write (blob or manifest push, mount, delete) is held back whole, status line
included, until its events are in every endpoint's durable queue: a client that has the
answer can count on the event. When the queue cannot be written the client is answered 503
instead, and pushes again. Pulls are never held: their events are queued in batches a moment
later (``Notifier.later``), so a worker killed outright may lose the pulls of its last moment.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.context import CALLER, REQUEST_ID, Caller
from ..api.router import Match, Route, route_of
from ..lifecycle.http import EXTENSION as REPOSITORY_DELETION
from ..observability.events import Write, write_of
from ..observability.exchange import BODY_MESSAGES
from .events import BLOB_MEDIA_TYPE, Happened, RequestRecord, manifest_media_type

if TYPE_CHECKING:
    from .notifier import Notifier

log = logging.getLogger("registry.notifications")

MANIFEST_LIMIT = 4 << 20
"""Manifests are read whole up to this size (the registry refuses larger ones)."""
WRITES = frozenset({"PUT", "POST", "DELETE"})
_ROUTES = frozenset(
    {Route.MANIFEST, Route.BLOB, Route.UPLOAD_START, Route.UPLOAD, Route.REPOSITORY_EXTENSION}
)


class Observed:
    """One manifest or blob request as it goes through."""

    __slots__ = ("body", "headers", "request_body", "status", "tags")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.request_body = bytearray()
        self.tags: list[str] = []
        """The tags a deleted manifest had, read before the delete."""


class Notify:
    def __init__(
        self, app: ASGIApp, notifier: Notifier, external_url: str | None, include_references: bool
    ) -> None:
        self.app = app
        self.notifier = notifier
        self.external_url = external_url
        self.include_references = include_references

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "/v2/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        found = route_of(scope)
        if found is None or found.route not in _ROUTES or found.name is None:
            await self.app(scope, receive, send)
            return
        if (found.route in {Route.UPLOAD_START, Route.UPLOAD} and method not in {"POST", "PUT"}) or (
            found.route == Route.REPOSITORY_EXTENSION
            and (method != "DELETE" or found.argument != REPOSITORY_DELETION)
        ):
            await self.app(scope, receive, send)
            return
        observed = Observed()
        write = method in WRITES
        keep_request = found.route == Route.MANIFEST and method == "PUT"
        keep_response = found.route == Route.MANIFEST and method == "GET" and self.include_references
        held: list[Message] = []
        if found.route == Route.MANIFEST and method == "DELETE" and ":" in (found.argument or ""):
            # Distribution tells of each tag the manifest's deletion removes.
            observed.tags = await self.notifier.tags_pointing_at(found.name, found.argument or "")

        async def observed_receive() -> Message:
            message = await receive()
            kept = observed.request_body
            if keep_request and message["type"] == "http.request" and len(kept) <= MANIFEST_LIMIT:
                kept += message.get("body", b"")
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                observed.status = message["status"]
                observed.headers = {name.lower(): value for name, value in message.get("headers", [])}
                if write and 200 <= observed.status < 300:
                    held.append(message)
                    return
            elif message["type"] in BODY_MESSAGES:
                if keep_response and len(observed.body) <= MANIFEST_LIMIT:
                    observed.body += message.get("body", b"")
                if held:
                    held.append(message)
                    if message.get("more_body", False):
                        return
                    if not await self._record(scope, found, observed):
                        await self.notifier.refuse(send)
                        return
                    for answer in held:
                        await send(answer)
                    return
                if not message.get("more_body", False) and not write:
                    await send(message)
                    try:
                        await self._record(scope, found, observed)
                    except Exception:  # the pull was answered; only its event is lost
                        log.exception("recording the pull of %s failed", found.name)
                    return
            await send(message)

        await self.app(scope, observed_receive, observed_send)

    async def _record(self, scope: Scope, found: Match, observed: Observed) -> bool:
        """Queue what the request did; False when a write's events could not be queued."""
        happened = await self._happened(scope, found, observed)
        if not happened:
            return True
        request = self._request(scope)
        base_url = self.external_url or f"{scope.get('scheme', 'http')}://{_header(scope, b'host') or ''}"
        if scope["method"] in WRITES:
            return await self.notifier.now(happened, request, base_url)
        self.notifier.later(happened, request, base_url)
        return True

    async def _happened(self, scope: Scope, found: Match, observed: Observed) -> list[Happened]:
        method, status = scope["method"], observed.status
        digest = observed.headers.get(b"docker-content-digest", b"").decode("latin-1")
        if method in WRITES:
            write = write_of(found, method, status, scope.get("query_string", b""), digest or None)
            return await self._written(scope, write, observed) if write is not None else []
        pulled = method in {"GET", "HEAD"} and (
            200 <= status < 300 or (found.route == Route.BLOB and status in {302, 307})
        )
        return await self._pulled(found, method, digest, observed) if pulled else []

    async def _written(self, scope: Scope, write: Write, observed: Observed) -> list[Happened]:
        repository, reference = write.repository, write.reference
        if write.kind == "repository":
            return [Happened("delete", "repository", repository, "")]
        if write.kind == "manifest":
            tag = None if ":" in reference else reference
            if write.action == "delete":
                if tag:
                    return [Happened("delete", "manifest", repository, "", tag=tag)]
                deleted = [Happened("delete", "manifest", repository, reference)]
                return deleted + [
                    Happened("delete", "manifest", repository, "", tag=t) for t in observed.tags
                ]
            manifest = bytes(observed.request_body)
            media_type = manifest_media_type(manifest, _header(scope, b"content-type"))
            digest = write.digest or ""
            size = len(manifest)
            return [Happened("push", "manifest", repository, digest, tag, media_type, size, manifest)]
        if write.action == "delete":
            return [Happened("delete", "blob", repository, reference)]
        digest = write.digest or ""
        size = await self.notifier.blob_size(digest)
        if write.action == "mount":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            source = query.get("from", [""])[0] or None
            return [
                Happened(
                    "mount", "blob", repository, digest, None, BLOB_MEDIA_TYPE, size, from_repository=source
                )
            ]
        return [Happened("push", "blob", repository, digest, None, BLOB_MEDIA_TYPE, size)]

    async def _pulled(self, found: Match, method: str, digest: str, observed: Observed) -> list[Happened]:
        repository, argument = found.name or "", found.argument
        status, headers = observed.status, observed.headers
        if found.route == Route.MANIFEST:
            reference = argument or ""
            tag = None if ":" in reference else reference
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            body = bytes(observed.body) if method == "GET" else None
            if body is None and self.include_references:  # a HEAD: Distribution reads it anyway
                body = await self.notifier.content(digest)
            size = _content_length(headers) or 0
            return [Happened("pull", "manifest", repository, digest, tag, content_type, size, body)]
        digest = digest or argument or ""
        length = _content_length(headers) if status != 206 else _range_total(headers)
        if status in {302, 307} or length is None:
            length = await self.notifier.blob_size(digest)
        return [Happened("pull", "blob", repository, digest, None, BLOB_MEDIA_TYPE, length)]

    @staticmethod
    def _request(scope: Scope) -> RequestRecord:
        client = scope.get("client")
        caller: Caller | None = scope.get(CALLER)
        return RequestRecord(
            id=scope.get(REQUEST_ID, ""),
            addr=f"{client[0]}:{client[1]}" if client else "",
            host=_header(scope, b"host") or "",
            method=scope["method"],
            user_agent=_header(scope, b"user-agent") or "",
            account=caller.account if caller is not None else None,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _content_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"content-length", b"")
    return int(value) if value.isdigit() else None


def _range_total(headers: dict[bytes, bytes]) -> int | None:
    total = headers.get(b"content-range", b"").rpartition(b"/")[2]
    return int(total) if total.isdigit() else None
