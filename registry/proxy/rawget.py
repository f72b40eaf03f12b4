"""One HTTP/1.1 GET whose body is received straight into the caller's memory (plain HTTP).

A blob from the upstream is most of a cold pull's CPU: through an HTTP client every byte is
read into a new ``bytes``, appended to the parser's buffer, sliced out of it again, and copied
into the batch that is hashed and written. Here the socket writes into the caller's buffer
itself: ``asyncio.BufferedProtocol`` hands the transport the free part
of that buffer. The response head is parsed here; the body is taken only by its
``Content-Length``, on a connection used for this one request (``Connection: close``), so no
other framing is ever needed: an answer without a length is refused by the caller.

Errors are the standard ones, translated by the caller: ``OSError`` for the connection,
``TimeoutError`` when connecting takes too long or the upstream sends nothing for ``idle``
seconds, ``MalformedAnswer`` for an answer that is not HTTP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httpx

HEAD_LIMIT = 64 << 10
"""The largest response head read (status line and headers)."""
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: [^\r\n]*)?")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*?)[ \t]*")
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\uffff]")
"""What a request target or header value may not contain (no header injection, no re-encoding)."""


class MalformedAnswer(Exception):
    """The other side did not answer in HTTP/1.1, or was asked for something no request can say."""


class _Receiver(asyncio.BufferedProtocol):
    """Bytes of one connection, written into the reader's buffer when it has given one (the
    ``target``), else into a small buffer of its own (the response head, and whatever arrives
    between two reads), which the next read takes first. Reading pauses whenever neither has
    room, so the socket's own buffer, and then TCP, hold the sender back."""

    def __init__(self, idle: float) -> None:
        self._idle = idle
        self.transport: asyncio.Transport | None = None
        self._spill = bytearray(HEAD_LIMIT)
        self._spilled = 0
        self._target: memoryview | None = None
        self._filled = 0
        self._into_target = False
        self._received = 0
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None and self._filled < len(self._target):
            self._into_target = True
            return self._target[self._filled :]
        self._into_target = False
        return memoryview(self._spill)[self._spilled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._received += nbytes
        if self._into_target:
            self._filled += nbytes
            if self._target is not None and self._filled == len(self._target):
                self._pause()
                self._wake()
        else:
            self._spilled += nbytes
            if self._spilled == len(self._spill):
                self._pause()
            self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        if exc is not None:
            self._error = exc
        self._wake()

    def _pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        """Until the reader's buffer is full, bytes arrive for the small one, or the connection
        ends; TimeoutError when nothing arrived for ``idle`` seconds."""
        if self._error is not None:
            raise self._error
        if self._ended:
            return
        while True:
            received = self._received
            self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait((self._waiter,), timeout=self._idle)
            if self._waiter.done():
                break
            if self._received == received:
                raise TimeoutError("nothing received")
        if self._error is not None:
            raise self._error

    async def head(self) -> bytes:
        """The response head, up to its blank line; what follows it stays for ``read_into``."""
        start = 0
        while True:
            end = self._spill.find(b"\r\n\r\n", max(start - 3, 0), self._spilled)
            if end >= 0:
                head = bytes(self._spill[:end])
                self._drop(end + 4)
                return head
            if self._spilled == len(self._spill):
                raise MalformedAnswer(f"a response head longer than {HEAD_LIMIT} bytes")
            if self._ended:
                raise ConnectionResetError("the connection ended before the response head")
            start = self._spilled
            self._resume()
            await self._wait()

    def _take_spill(self, into: memoryview) -> int:
        taken = min(len(into), self._spilled)
        into[:taken] = self._spill[:taken]
        self._drop(taken)
        return taken

    def _drop(self, count: int) -> None:
        """Forget the first ``count`` bytes of the small buffer (never resized: the transport
        may hold a view of it)."""
        rest = self._spilled - count
        self._spill[:rest] = self._spill[count : self._spilled]
        self._spilled = rest

    async def read_into(self, buffer: memoryview) -> int:
        """Fill ``buffer``; fewer bytes only when the connection ended first."""
        filled = self._take_spill(buffer)
        if filled == len(buffer):
            return filled
        self._target, self._filled = buffer, filled
        try:
            while self._filled < len(buffer) and not self._ended:
                self._resume()
                await self._wait()
            return self._filled
        finally:
            self._target = None
            self._pause()


class RawResponse:
    """A response whose body is read with ``read_into``; ``length`` is its Content-Length (None
    when it has none, or the body is framed otherwise)."""

    def __init__(self, url: str, status_code: int, headers: httpx.Headers, receiver: _Receiver) -> None:
        self.url = url
        self.status_code = status_code
        self.headers = headers
        self._receiver = receiver
        self.length = content_length(headers)
        self._left = self.length or 0

    async def read_into(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the body; fewer bytes only at its end (or when the connection
        ended before it)."""
        buffer = buffer[: self._left]
        if not buffer:
            return 0
        read = await self._receiver.read_into(buffer)
        self._left -= read
        return read

    async def aclose(self) -> None:
        if self._receiver.transport is not None:
            self._receiver.transport.abort()


async def get(url: str, headers: Mapping[str, str], connect: float, idle: float) -> RawResponse:
    """Send ``GET url`` (plain HTTP) with ``headers`` on a new connection and read the response's
    head."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme != "http":
        raise MalformedAnswer("not an http URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = parts.netloc.rpartition("@")[2]
    fields = {"Host": authority, **headers, "Connection": "close"}
    if _UNSAFE.search(target) or any(_UNSAFE.search(value.replace(" ", "")) for value in fields.values()):
        raise MalformedAnswer("a request target or header the registry does not send")
    request = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(connect):
        transport, receiver = await loop.create_connection(
            lambda: _Receiver(idle),
            host,
            parts.port or 80,
        )
    try:
        transport.write(request.encode("ascii"))
        while True:
            status, fields_received = _parse_head(await receiver.head())
            if status >= 200 or status == 101:
                return RawResponse(url, status, fields_received, receiver)
            # An interim answer (100 Continue and the like): the final one follows.
    except BaseException:
        transport.abort()
        raise


def _parse_head(head: bytes) -> tuple[int, httpx.Headers]:
    status_line, *lines = head.split(b"\r\n")
    matched = _STATUS_LINE.fullmatch(status_line)
    if matched is None:
        raise MalformedAnswer("not an HTTP/1.1 status line")
    fields: list[tuple[bytes, bytes]] = []
    for line in lines:
        field = _FIELD.fullmatch(line)
        if field is None:
            raise MalformedAnswer("a malformed response header")
        fields.append((field[1], field[2]))
    return int(matched[1]), httpx.Headers(fields)


def content_length(headers: httpx.Headers) -> int | None:
    """The body's length by its ``Content-Length``; None when it has none, or other framing."""
    if "transfer-encoding" in headers:
        return None
    values = {value.strip() for value in ",".join(headers.get_list("content-length")).split(",")}
    if len(values) != 1:
        return None
    (value,) = values
    return int(value) if value.isdigit() else None
