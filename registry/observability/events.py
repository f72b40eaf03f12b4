"""The registry's domain events: what a successful request did, said once for every listener.

``write_of`` is the one rule for "a successful write happened": a manifest or blob pushed (or
mounted), a manifest or blob deleted, a repository deleted. It reads the finished exchange (the
route, the method, the status the client got, the digest the registry answered with), so every
write the API can do is covered and no handler emits anything. The webhooks
(``registry.notifications.layer``) build Distribution's events from it; the ``EventStream``
here tells the audit log, and the pull-time records, which also hear of manifest pulls
(``GET`` or ``HEAD``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from offload import to_thread

from ..api.router import Match, Route
from ..lifecycle.http import EXTENSION as REPOSITORY_DELETION

if TYPE_CHECKING:
    from .exchange import Exchange

audit_log = logging.getLogger("registry.audit")
log = logging.getLogger("registry")


class Event(NamedTuple):
    time: str
    action: str
    """push, mount, delete or pull."""
    kind: str
    """manifest, blob or repository."""
    repository: str
    reference: str
    """The tag or digest the client named."""
    digest: str | None
    media_type: str | None
    account: str | None
    client: str
    request_id: str

    def record(self) -> dict[str, object]:
        return {
            "time": self.time,
            "action": self.action,
            "kind": self.kind,
            "repository": self.repository,
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "account": self.account,
            "client": self.client,
            "request_id": self.request_id,
        }


Listener = Callable[[Event], Awaitable[None]]


class EventStream:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self.listeners.append(listener)

    async def emit(self, event: Event) -> None:
        """Tell every listener; one that fails is logged and never fails the request, whose
        write has already happened."""
        for listener in self.listeners:
            try:
                await listener(event)
            except Exception:
                log.exception("recording %s %s %s failed", event.action, event.kind, event.repository)


class Write(NamedTuple):
    """A successful write, as every listener is told of it."""

    action: str
    """push, mount or delete."""
    kind: str
    """manifest, blob or repository."""
    repository: str
    reference: str
    """The tag or digest the client named; an uploaded blob's digest; empty for a repository."""
    digest: str | None
    """The digest the registry answered with (a deleted blob's: the one named)."""


WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})
"""The methods whose success can be a write (PATCH only adds to an unfinished upload)."""


def write_of(found: Match | None, method: str, status: int, query: bytes, digest: str | None) -> Write | None:
    """The write a finished request did, from its route, method, the status the client got and
    the ``Docker-Content-Digest`` it was answered with; None when it wrote nothing."""
    if found is None or found.name is None or not 200 <= status < 300 or method not in WRITE_METHODS:
        return None
    route, repository, argument = found.route, found.name, found.argument or ""
    if route == Route.MANIFEST and method in {"PUT", "DELETE"}:
        return Write("push" if method == "PUT" else "delete", "manifest", repository, argument, digest)
    if route == Route.BLOB and method == "DELETE":
        return Write("delete", "blob", repository, argument, digest or argument)
    if route == Route.REPOSITORY_EXTENSION and method == "DELETE" and argument == REPOSITORY_DELETION:
        return Write("delete", "repository", repository, "", digest)
    # An upload finished (PUT), or a blob pushed or mounted in one request (POST): 201 and its
    # digest. Anything else (202) started or continued an upload.
    if status != 201 or not digest:
        return None
    if route == Route.UPLOAD and method == "PUT":
        return Write("push", "blob", repository, digest, digest)
    if route == Route.UPLOAD_START and method == "POST":
        # A non-empty mount parameter, found without parsing the whole query on every mount.
        mounted = b"mount=" in query and any(
            part.startswith(b"mount=") and len(part) > 6 for part in query.split(b"&")
        )
        return Write("mount" if mounted else "push", "blob", repository, digest, digest)
    return None


def event_for(
    exchange: Exchange, found: Match | None, query: bytes, content_type: str | None
) -> Event | None:
    """The event a finished exchange caused (a write, or a manifest pull), or None."""
    method = exchange.method
    if exchange.handler == "manifest" and method in {"GET", "HEAD"}:
        if exchange.status not in {200, 304}:
            return None
        action, kind, media_type = "pull", "manifest", None
        reference, digest = exchange.reference or "", exchange.digest
    else:
        write = write_of(found, method, exchange.status, query, exchange.digest)
        if write is None:
            return None
        action, kind, reference, digest = write.action, write.kind, write.reference, write.digest
        media_type = content_type if kind == "manifest" and action == "push" else None
    return Event(
        time=_now(),
        action=action,
        kind=kind,
        repository=exchange.repository or "",
        reference=reference,
        digest=digest,
        media_type=media_type,
        account=exchange.account,
        client=exchange.client,
        request_id=exchange.request_id,
    )


def _now() -> str:
    now = time.time()
    return _second(int(now)) + f".{int(now % 1 * 1000):03d}Z"


@lru_cache(maxsize=1)
def _second(whole: int) -> str:
    """Formatted once per second: every manifest pull makes an event."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


class AuditLog:
    """Every write, one JSON object per line: appended to ``path`` when given (one ``write`` per
    line on an ``O_APPEND`` file, so the workers' lines never mix), else to the
    ``registry.audit`` logger."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    async def __call__(self, event: Event) -> None:
        if event.action == "pull":
            return  # writes only: a pull changes nothing
        if self.path is None and not audit_log.isEnabledFor(logging.INFO):
            return  # the logs' level leaves it out: no line to build on every write
        record = event.record()
        line = json.dumps(record, separators=(",", ":"))
        if self.path is None:
            summary = f"{event.action} {event.kind} {event.repository}@{event.reference}"
            audit_log.info("%s", line, extra={"data": record, "summary": summary})
            return
        await to_thread(_append, self.path, (line + "\n").encode())


def _append(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
