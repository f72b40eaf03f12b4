"""Large request bodies read from the socket straight into the application's memory.

uvicorn hands a body to the application in bytes objects: the event loop reads the socket into a
buffer of its own and copies each read into a bytes object, the HTTP parser copies the body's part
of it into another, and the upload path copies that into its batch. Three copies of every byte
besides the kernel's, and one message through the ASGI layers for every read of at most 256 KiB.

A request with a ``Content-Length`` of RAW_MIN or more (and no ``Transfer-Encoding``) on a plain
connection is offered a ``RawBody`` in its scope (``raw_body(scope)``). Once the parser holds no
unread bytes of the body (the first ``receive`` takes them, and sends ``100 Continue`` where the
client asked for it), the ``RawBody`` takes the parser's place on the transport as a buffered
protocol: the kernel copies the rest of the body into the caller's buffer, in reads as large as
that buffer, and never a byte past the body's end. When the last byte is in, the parser takes the
connection back, afresh, and the request's message is complete as if the parser had read it:
keep-alive, the next request and the response go on as usual. A body the application leaves
unread when it answers is read to its end and dropped, as uvicorn drops it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from .tlsprobe import PlainHTTPProtocol

RAW_BODY = "dockyard.raw_body"
"""The key of a request's ``RawBody`` in ``scope["extensions"]``."""
RAW_MIN = 1 << 20
"""Smaller bodies take the parser's path: switching protocols costs a few system calls."""
SPARE = 64 << 10
"""Bytes read at a time while nobody waits for them: a body answered early, dropped."""


def raw_body(scope: Scope) -> RawBody | None:
    """The request's ``RawBody``, when its connection offers one."""
    extensions = scope.get("extensions")
    found = extensions.get(RAW_BODY) if extensions else None
    return found if isinstance(found, RawBody) else None


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length when one ``Content-Length`` gives it and no ``Transfer-Encoding`` does."""
    length = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
    return length


class RawBodyProtocol(PlainHTTPProtocol):
    """uvicorn's httptools protocol, offering large bodies of known length to be read raw."""

    parsed = 0
    """Bytes of the current request's body the parser has taken."""
    _raw: RawBody | None = None

    def on_headers_complete(self) -> None:
        self.parsed = 0
        self._raw = None
        length = _declared_length(self.headers)
        pipelined = self.cycle is not None and not self.cycle.response_complete
        if length is not None and length >= RAW_MIN and self.scheme == "http" and not pipelined:
            scope = cast(dict[str, Any], self.scope)
            self._raw = RawBody(self, scope, length)
            scope["extensions"] = {**scope.get("extensions", {}), RAW_BODY: self._raw}
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.parsed += len(body)
        super().on_body(body)

    def on_response_complete(self) -> None:
        if self._raw is not None:
            self._raw.abandon()
        super().on_response_complete()

    def body_read_raw(self) -> None:
        """The body's last byte came past the parser: a fresh one reads the next request."""
        self.parser = httptools.HttpRequestParser(self)
        # As uvicorn sets up its parser: an answer may follow a request that closes.
        if hasattr(self.parser, "set_dangerous_leniencies"):
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.on_message_complete()


class RawBody(asyncio.BufferedProtocol):
    """The part of one request's body that its parser has not read, read into given memory."""

    def __init__(self, connection: RawBodyProtocol, scope: Scope, length: int) -> None:
        self.received = 0
        """Bytes read here, past the parser."""
        self._connection = connection
        self._scope = scope
        self._length = length
        self._remaining = 0
        self._reading = False
        self._done = False
        self._abandoned = False
        self._lost = False
        self._target: memoryview | None = None
        self._filled = 0
        self._waiter: asyncio.Future[None] | None = None
        self._held = bytearray()
        """Bytes read while no ``read_into`` waited (the transport resumed by someone else)."""
        self._spare: bytearray | None = None

    def begin(self) -> bool:
        """Whether ``read_into`` reads the rest of the body: once the parser holds none of it
        unread (and ``100 Continue`` is sent), the first call puts this protocol in its place."""
        if self._reading:
            return not self._done
        connection = self._connection
        cycle = connection.cycle
        if (
            self._abandoned
            or cycle is None
            or cycle.scope is not self._scope
            or not cycle.more_body
            or cycle.response_complete
            or cycle.disconnected
            or cycle.waiting_for_100_continue
            or cycle.body
            or connection.transport.is_closing()
            or connection.parsed >= self._length
        ):
            return False
        self._remaining = self._length - connection.parsed
        connection.flow.pause_reading()  # resumed by read_into, with this protocol's buffers
        connection.transport.set_protocol(self)
        self._reading = True
        return True

    async def read_into(self, view: memoryview) -> int:
        """Fill ``view`` with the body's next bytes; fewer only where the body ends. Raises
        ``ClientDisconnect`` when the connection is lost first."""
        filled = min(len(self._held), len(view))
        if filled:
            view[:filled] = self._held[:filled]
            del self._held[:filled]
        if filled == len(view) or self._done:
            return filled
        if self._lost:
            raise ClientDisconnect
        self._target, self._filled = view, filled
        self._waiter = asyncio.get_running_loop().create_future()
        self._connection.flow.resume_reading()
        try:
            await self._waiter
        finally:
            filled = self._filled
            self._target = self._waiter = None
            if not self._done and not self._lost:
                self._connection.flow.pause_reading()  # nobody's memory to read into
        return filled

    def abandon(self) -> None:
        """The request is answered: what is left of the body is read and dropped."""
        self._abandoned = True
        self._held.clear()

    # The transport's side: these run on the event loop as the socket is read.

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None:
            end = min(len(self._target), self._filled + self._remaining)
            return self._target[self._filled : end]
        if self._spare is None:
            self._spare = bytearray(SPARE)
        return memoryview(self._spare)[: min(SPARE, self._remaining)]

    def buffer_updated(self, nbytes: int) -> None:
        self._remaining -= nbytes
        self.received += nbytes
        if self._target is not None:
            self._filled += nbytes
            if self._filled == len(self._target) or not self._remaining:
                if self._remaining:
                    self._connection.flow.pause_reading()  # until the next read_into
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
        elif not self._abandoned and self._spare is not None:
            self._held += self._spare[:nbytes]
            self._connection.flow.pause_reading()
        if not self._remaining:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        connection = self._connection
        connection.flow.pause_reading()
        connection.transport.set_protocol(connection)
        connection.body_read_raw()
        connection.flow.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # the body is cut short: the transport closes, and connection_lost tells

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ClientDisconnect())
        self._connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self._connection.pause_writing()

    def resume_writing(self) -> None:
        self._connection.resume_writing()
