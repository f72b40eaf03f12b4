"""Each request observed once, around the whole application: metrics, access log, events.

What a request was (route, repository, reference) comes from the router, who made it from the
``Caller`` the API puts in the scope once access is granted, and what it did from the response:
status, bytes each way, the digest header. So no handler knows about metrics or logs.

The client's address is the peer's, or, when the peer is a trusted proxy (or the proxy on a unix
socket), the one it forwarded, read in the same pass over the headers as the rest. A trusted
proxy's ``X-Request-Id`` is reused; otherwise the registry makes one. Either way it is sent back
as ``X-Request-Id``, logged, and given to the layers inside in the scope (``REQUEST_ID``).
``X-Forwarded-*`` headers from any other peer are removed here.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.context import CALLER, REQUEST_ID, Caller
from ..api.router import Route, route_of
from ..rawbody import raw_body
from ..zerocopy import ZEROCOPY_SEND
from .accesslog import AccessLog
from .events import WRITE_METHODS, Event, EventStream, event_for
from .metrics import Metrics, RequestSeries

HANDLER_NAMES = {
    Route.BASE: "base",
    Route.CATALOG: "catalog",
    Route.TAGS: "tags",
    Route.MANIFEST: "manifest",
    Route.BLOB: "blob",
    Route.UPLOAD_START: "blob_upload",
    Route.UPLOAD: "blob_upload_chunk",
    Route.REFERRERS: "referrers",
    Route.REGISTRY_EXTENSION: "extension",
    Route.REPOSITORY_EXTENSION: "extension",
}
"""Distribution's names: every request to an upload's own URL is ``blob_upload_chunk``."""
DIGEST_HEADER = b"docker-content-digest"
BODY_MESSAGES = frozenset({"http.response.body", ZEROCOPY_SEND})
"""Messages carrying a response's body: bytes, or (a ``count`` of) a file the server sends."""
READ_METHODS = frozenset({"GET", "HEAD"})
"""The methods of a manifest request that are a pull."""
FORWARDED_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
"""What a forwarded request id may look like: nothing that could break a log line."""


class Exchange:
    """One request as the logs tell it; filled in as the request goes through."""

    __slots__ = (
        "account", "bytes_in", "bytes_out", "client", "digest", "handler", "head_size", "method",
        "path", "reference", "repository", "request_id", "started", "status", "user_agent",
    )  # fmt: skip

    def __init__(self, method: str, path: str, handler: str, request_id: str) -> None:
        self.method = method
        self.path = path
        self.handler = handler
        self.request_id = request_id
        self.account: str | None = None
        self.client = ""
        self.repository: str | None = None
        self.reference: str | None = None
        self.user_agent = ""
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.digest: str | None = None
        self.head_size = 0
        """Distribution's approximate size of the request line and headers, for the metrics."""
        self.started = time.perf_counter()

    def fields(self, duration: float) -> dict[str, object]:
        return {
            "client": self.client,
            "account": self.account or "",
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "duration": float(f"{duration:.6f}"),
            "route": self.handler,
            "repository": self.repository or "",
            "reference": self.reference or "",
            "request_id": self.request_id,
            "user_agent": self.user_agent,
        }


class RequestIds:
    """Request ids unique across workers and restarts without a system call each: 64 random
    bits drawn when a worker builds its application, then that worker's count of requests."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.count = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


def trusted_peer_check(networks: Sequence[str]) -> Callable[[str], bool]:
    """Whether a peer address is one of ``networks`` (an IPv4-mapped IPv6 peer counts as IPv4)."""
    parsed = [ipaddress.ip_network(network) for network in networks]

    @lru_cache(maxsize=256)
    def trusted(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in parsed)

    return trusted


def unix_peer(scope: Scope) -> bool:
    """Whether the request came over a unix socket: no peer address, the socket's path as the
    server's address."""
    server = scope.get("server")
    return scope.get("client") is None and server is not None and server[1] is None


FORWARDED_SCHEMES = frozenset({"http", "https"})


def forwarded_client(values: Sequence[bytes], trusted: Callable[[str], bool]) -> tuple[str, int] | None:
    """The client an ``X-Forwarded-For`` chain names: the rightmost entry that is not a trusted
    proxy, as each proxy appends the peer it saw (the leftmost is whatever the client sent);
    the leftmost when all of them are trusted; ``None`` when that entry is empty."""
    entries = b",".join(values).decode("latin-1").split(",")
    for entry in reversed(entries):
        host, port = host_and_port(entry.strip())
        if not trusted(host):
            break
    else:
        host, port = host_and_port(entries[0].strip())
    return (host, port) if host else None


def host_and_port(entry: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80`` or ``::1``: what is not one of those is kept
    whole as the host, so no trust check sees a part of it."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return entry, 0
        return host, port_number(rest[1:]) or 0
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        number = port_number(port)
        return (entry, 0) if number is None else (host, number)
    return entry, 0


def port_number(text: str) -> int | None:
    return int(text) if 0 < len(text) <= 5 and text.isdecimal() else None


class Observe:
    """The ASGI layer around the public application. ``fixed_routes`` names the exact paths
    served beside the API (health checks, the token server) for the ``handler`` label, and
    ``mounted_routes`` the one-segment prefixes of mounted applications (``/ui``). Requests that
    arrived on ``debug``'s port (the debug listener) go to its application, unobserved."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        events: EventStream,
        access_logged: bool,
        trusted_proxies: Sequence[str],
        fixed_routes: Mapping[str, str],
        mounted_routes: Mapping[str, str],
        debug: tuple[int, ASGIApp] | None = None,
    ) -> None:
        self.debug = debug
        self.app = app
        self.metrics = metrics
        self.events = events
        self.access_logged = access_logged
        self.access_log = AccessLog()
        self.trusted = trusted_peer_check(trusted_proxies)
        self.request_ids = RequestIds()
        self.fixed_routes = dict(fixed_routes)
        self.mounted = {prefix.strip("/"): name for prefix, name in mounted_routes.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.debug is not None:
            server = scope.get("server")
            if server is not None and server[1] == self.debug[0]:
                await self.debug[1](scope, receive, send)
                return
        exchange = self._begin(scope)
        metrics = self.metrics
        series = None
        if metrics is not None:
            key = (exchange.handler, exchange.method)
            series = metrics.known_series.get(key) or metrics.series(*key)
            series.in_flight.value += 1
        request_id_header = (b"x-request-id", exchange.request_id.encode())
        finished = False
        # The digest header is read for the events only: writes and manifest pulls.
        eventful = exchange.method in WRITE_METHODS or exchange.handler == "manifest"

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.bytes_in += len(message.get("body", b""))
            return message

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                headers = message.setdefault("headers", [])
                for name, value in headers if eventful else ():
                    # The length first: lower() on every header of every answer adds up.
                    if len(name) == len(DIGEST_HEADER) and name.lower() == DIGEST_HEADER:
                        exchange.digest = value.decode("latin-1")
                message["headers"] = [*headers, request_id_header]
            elif message["type"] in BODY_MESSAGES:
                exchange.bytes_out += message.get("count", 0) or len(message.get("body", b""))
                if not message.get("more_body", False):
                    # Logged and recorded before the client has the whole answer, so whoever
                    # acts on the answer finds the access line and the audit record written.
                    nonlocal finished
                    finished = True
                    event = self._finish(scope, exchange, series)
                    if event is not None:
                        await self.events.emit(event)
            await send(message)

        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            if series is not None:
                series.in_flight.value -= 1
            if not finished:  # no response, or one cut short
                event = self._finish(scope, exchange, series)
                if event is not None:
                    await self.events.emit(event)

    def _begin(self, scope: Scope) -> Exchange:
        """The exchange as the request starts; a trusted proxy's client and scheme put in the
        scope, any other peer's ``X-Forwarded-*`` headers taken out of it."""
        path: str = scope["path"]
        handler = self.fixed_routes.get(path)
        found = None
        if handler is None and self.mounted:
            handler = self.mounted.get(path.split("/", 2)[1])  # /ui and /ui/... name "ui"
        if handler is None:
            found = route_of(scope)
            handler = HANDLER_NAMES[found.route] if found is not None else "unmatched"
        request_id = None
        user_agent = ""
        forwarded = False
        forwarded_for: list[bytes] = []
        forwarded_proto = b""
        method: str = scope["method"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        head_size = 0
        if self.metrics is not None:  # off by default: then nothing reads the size
            head_size = len(method) + len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            head_size += sum(map(len, itertools.chain.from_iterable(headers)))
        for name, value in headers:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name.startswith(b"x-forwarded-"):
                forwarded = True
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                elif name == b"x-forwarded-proto":
                    forwarded_proto = value
        if request_id is not None or forwarded:
            peer_trusted = unix_peer(scope) or self.trusted(scope["client"][0] if scope.get("client") else "")
            if request_id is not None and not (peer_trusted and FORWARDED_ID.fullmatch(request_id)):
                request_id = None
            if forwarded and not peer_trusted:
                # Set by a peer that is no proxy of ours: nothing after this layer (the token
                # challenge's realm among them) may read them.
                scope["headers"] = [
                    pair for pair in scope["headers"] if not pair[0].startswith(b"x-forwarded-")
                ]
            elif forwarded:
                self._forwarded(scope, forwarded_for, forwarded_proto)
        exchange = Exchange(method, path, handler, request_id or self.request_ids())
        scope[REQUEST_ID] = exchange.request_id
        exchange.user_agent = user_agent[:256]
        exchange.head_size = head_size
        if found is not None:
            exchange.repository = found.name
            exchange.reference = found.argument
        return exchange

    def _forwarded(self, scope: Scope, forwarded_for: list[bytes], forwarded_proto: bytes) -> None:
        """A trusted proxy's client and scheme, as uvicorn's proxy headers middleware sets them."""
        scheme = forwarded_proto.decode("latin-1").strip()
        if scheme in FORWARDED_SCHEMES:
            scope["scheme"] = scheme
        client = forwarded_client(forwarded_for, self.trusted) if forwarded_for else None
        if client is not None:
            scope["client"] = client

    def _finish(self, scope: Scope, exchange: Exchange, series: RequestSeries | None) -> Event | None:
        """Records and logs the finished exchange; the event it caused, for the caller to emit
        (awaited only when there is one: most requests cause none)."""
        duration = time.perf_counter() - exchange.started
        exchange.client = scope["client"][0] if scope.get("client") else ""
        caller: Caller | None = scope.get(CALLER)
        if caller is not None:
            exchange.account = caller.account
        raw = raw_body(scope)
        if raw is not None:  # the body's bytes read past the ASGI messages
            exchange.bytes_in += raw.received
        status = exchange.status or 500  # no response started: the connection was dropped
        if series is not None:
            series.record(status, duration, exchange.head_size, exchange.bytes_in, exchange.bytes_out)
        if self.access_logged and self.access_log.enabled():
            summary = f"{exchange.method} {exchange.path} {exchange.status}"
            self.access_log.write(exchange.fields(duration), summary)
        pulled = exchange.handler == "manifest" and exchange.method in READ_METHODS and status in {200, 304}
        if (200 <= status < 300 and exchange.method in WRITE_METHODS) or pulled:
            query = scope.get("query_string", b"")
            # Only a pushed manifest's event carries the request's type: a pull skips the search.
            content_type = _content_type(scope) if exchange.method in WRITE_METHODS else None
            return event_for(exchange, route_of(scope), query, content_type)
        return None


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1"))
    return None
