"""The registry's domain events: one stream that the audit log (and later webhooks) listen to.

An event says what a successful write changed: a manifest or blob pushed (or mounted), a
manifest or blob deleted, with the account and client address that caused it; or that a manifest
was pulled (``GET`` or ``HEAD``), which the pull-time records listen for. Events are made
from the finished exchange (route, status, the digest the registry answered with), so every
write the API can do is covered and no handler emits anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs

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


def event_for(exchange: Exchange, query: bytes, content_type: str | None) -> Event | None:
    """The event a successful exchange caused (a write, or a pull), or None."""
    method, handler = exchange.method, exchange.handler
    if handler == "manifest" and method in {"GET", "HEAD"}:
        action, kind, media_type = "pull", "manifest", None
    elif handler == "manifest" and method == "PUT":
        action, kind, media_type = "push", "manifest", content_type
    elif handler in {"manifest", "blob"} and method == "DELETE":
        action, kind, media_type = "delete", handler, None
    elif handler == "blob_upload_chunk" and method == "PUT":
        action, kind, media_type = "push", "blob", None
    elif handler == "extension" and method == "DELETE" and exchange.repository:
        action, kind, media_type = "delete", "repository", None
    elif handler == "blob_upload" and method == "POST" and exchange.status == 201:
        mounted = b"mount=" in query and "from" in parse_qs(query.decode("latin-1"))
        action, kind, media_type = ("mount" if mounted else "push"), "blob", None
    else:
        return None
    digest = exchange.digest or (exchange.reference if kind == "blob" and method == "DELETE" else None)
    reference = exchange.reference if handler in {"manifest", "blob"} else digest
    return Event(
        time=_now(),
        action=action,
        kind=kind,
        repository=exchange.repository or "",
        reference=reference or "",
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
        record = event.record()
        line = json.dumps(record, separators=(",", ":"))
        if self.path is None:
            summary = f"{event.action} {event.kind} {event.repository}@{event.reference}"
            audit_log.info("%s", line, extra={"data": record, "summary": summary})
            return
        await asyncio.to_thread(_append, self.path, (line + "\n").encode())


def _append(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
