"""One HTTP/1.1 GET whose body is received straight into the caller's memory.

A blob from the upstream is most of a cold pull's CPU: through an HTTP client every byte is
read into a new ``bytes``, appended to the parser's buffer, sliced out of it again, and copied
into the batch that is hashed and written. Here the socket (or, over TLS, the decryption)
writes into the caller's buffer itself: ``asyncio.BufferedProtocol`` hands the transport the free part
of that buffer. The response head is parsed here; the body is taken only by its
``Content-Length``, on a connection used for this one request (``Connection: close``), so no
other framing is ever needed: an answer without a length is refused by the caller.

Errors are the standard ones, translated by the caller: ``OSError`` (``ssl.SSLError``
included) for the connection,
``TimeoutError`` when connecting takes too long or the upstream sends nothing for ``idle``
seconds, ``MalformedAnswer`` for an answer that is not HTTP.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httpx

HEAD_LIMIT = 64 << 10
"""The largest response head read (status line and headers)."""
CIPHER_CHUNK = 256 << 10
"""Bytes of TLS records received at a time, before they are decrypted into the reader's buffer."""
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

    def __init__(self, idle: float, context: ssl.SSLContext | None, host: str) -> None:
        self._idle = idle
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = (
            context.wrap_bio(self._incoming, self._outgoing, server_hostname=host) if context else None
        )
        """Over TLS, the registry's own layer over the plain socket: the transport's would drop
        what it has not handed over when the peer closes while reading is paused (uvloop)."""
        self._cipher = bytearray(CIPHER_CHUNK if context else 0)
        self.handshaken = False
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
        return memoryview(self._cipher) if self._tls is not None else self._plain_buffer()

    def _plain_buffer(self) -> memoryview:
        """Where the next plain bytes go: the reader's buffer while it has room, else the small one."""
        if self._target is not None and self._filled < len(self._target):
            self._into_target = True
            return self._target[self._filled :]
        self._into_target = False
        return memoryview(self._spill)[self._spilled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._received += nbytes
        if self._tls is not None:
            self._incoming.write(memoryview(self._cipher)[:nbytes])
            if self.handshaken:
                self.decrypt()
            else:
                self._wake()
            return
        self._delivered(nbytes)

    def _delivered(self, nbytes: int) -> None:
        """``nbytes`` of plain bytes written where ``get_buffer`` (or ``decrypt``) chose."""
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

    def decrypt(self) -> None:
        """Decrypt what has arrived into the reader's buffer or the small one, while either has
        room; what does not fit stays in the TLS layer, and reading pauses."""
        assert self._tls is not None
        while not self._ended:
            into = self._plain_buffer()
            if not into:
                self._pause()
                return
            try:
                # With a buffer to fill, the count filled (typeshed knows only the other form).
                count = cast(int, self._tls.read(len(into), into))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                count = 0
            except ssl.SSLError as exc:
                self._error, count = exc, 0
            if not count:
                self._ended = True
                self._wake()
                break
            self._delivered(count)
        self.flush()

    def flush(self) -> None:
        """Send what the TLS layer has to say (the handshake, the request, key updates)."""
        if self._tls is not None and self.transport is not None and self._outgoing.pending:
            self.transport.write(self._outgoing.read())

    def eof_received(self) -> bool:
        if self._tls is not None:
            self._incoming.write_eof()
            if self.handshaken:
                self.decrypt()
            self._wake()
            return False
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._error = exc
        if self._tls is not None and exc is None and self.handshaken:
            # What the TLS layer holds is still to be read: the end is its close_notify or EOF.
            if not self._incoming.eof:
                self._incoming.write_eof()
            self.decrypt()
        else:
            self._ended = True
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
            if self._tls is not None and self.handshaken:
                self.decrypt()
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

    async def handshake(self) -> None:
        """The TLS handshake, over the plain connection (a no-op without TLS)."""
        if self._tls is None:
            return
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                if self._ended or self._incoming.eof:
                    raise ConnectionResetError("the connection ended during the TLS handshake") from None
                await self._wait()
        self.handshaken = True
        self.flush()

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        if self._tls is None:
            self.transport.write(data)
            return
        self._tls.write(data)
        self.flush()

    async def read_into(self, buffer: memoryview) -> int:
        """Fill ``buffer``; fewer bytes only when the connection ended first."""
        filled = self._take_spill(buffer)
        if filled == len(buffer):
            return filled
        self._target, self._filled = buffer, filled
        try:
            while self._filled < len(buffer) and not self._ended:
                if self._tls is not None:
                    self.decrypt()  # what the TLS layer already holds comes first
                    if self._filled == len(buffer) or self._ended:
                        break
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


async def get(
    url: str, headers: Mapping[str, str], context: ssl.SSLContext, connect: float, idle: float
) -> RawResponse:
    """Send ``GET url`` with ``headers`` on a new connection (TLS with ``context`` for https) and
    read the response's head."""
    parts = urlsplit(url)
    host, secure = parts.hostname, parts.scheme == "https"
    if not host or parts.scheme not in {"http", "https"}:
        raise MalformedAnswer("not an http(s) URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = parts.netloc.rpartition("@")[2]
    fields = {"Host": authority, **headers, "Connection": "close"}
    if _UNSAFE.search(target) or any(_UNSAFE.search(value.replace(" ", "")) for value in fields.values()):
        raise MalformedAnswer("a request target or header the registry does not send")
    request = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    loop = asyncio.get_running_loop()
    receiver = _Receiver(idle, context if secure else None, host)
    try:
        async with asyncio.timeout(connect):
            await loop.create_connection(lambda: receiver, host, parts.port or (443 if secure else 80))
            await receiver.handshake()
        receiver.send(request.encode("ascii"))
        while True:
            status, fields_received = _parse_head(await receiver.head())
            if status >= 200 or status == 101:
                return RawResponse(url, status, fields_received, receiver)
            # An interim answer (100 Continue and the like): the final one follows.
    except BaseException:
        if receiver.transport is not None:
            receiver.transport.abort()
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
