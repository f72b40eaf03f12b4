"""One bodiless HTTP/1.1 request and its whole answer, on a non-blocking socket, on the event loop.

The signed path (signed.py) sends its small GETs and HEADs over plain HTTP here, on a kept-alive
connection, without the thread hop whose two wake-ups cost more CPU than the request itself.
Errors: ``ClosedUnused`` when the server had closed the connection before it took the request
(the caller sends it again elsewhere), else ``OSError``, ``http.client.HTTPException`` and
``ValueError`` for an answer cut short or not HTTP; the caller bounds the whole in time.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import socket

_RECEIVE = 64 << 10
"""The most one read of a small answer takes."""

Reply = tuple[int, http.client.HTTPMessage, bytes, bool]
"""An answer's status, headers and body, with whether its connection may carry another request."""


class ClosedUnused(Exception):
    """A kept-alive connection the server had closed before it took the request."""


async def readable(sock: socket.socket) -> None:
    """Until the non-blocking ``sock`` has bytes to read (or is closed)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock, wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock)


async def _received(sock: socket.socket) -> bytes:
    """What the non-blocking ``sock`` has, once it has something (b"" once closed). Read at once
    when it can be: the event loop's own ``sock_recv`` registers the socket with it every time."""
    while True:
        try:
            return sock.recv(_RECEIVE)
        except BlockingIOError:
            await readable(sock)


async def exchange(sock: socket.socket, request: bytes, head_only: bool) -> Reply:
    """Send ``request`` on the non-blocking ``sock`` and read its answer whole; with whether the
    connection may carry another request."""
    try:
        sent = sock.send(request)  # a bodiless request fits an idle connection's buffer
    except BlockingIOError:
        sent = 0
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise ClosedUnused from exc
    if sent < len(request):
        await asyncio.get_running_loop().sock_sendall(sock, request[sent:])
    received = bytearray()
    while (end := received.find(b"\r\n\r\n")) < 0:
        try:
            chunk = await _received(sock)
        except ConnectionResetError as exc:
            if received:
                raise
            raise ClosedUnused from exc
        if not chunk:
            if received:
                raise http.client.IncompleteRead(bytes(received))
            raise ClosedUnused
        received += chunk
    status_line, _, header_lines = bytes(received[:end]).partition(b"\r\n")
    _version, status_text, *_reason = status_line.split(b" ", 2)
    headers = http.client.parse_headers(io.BytesIO(header_lines + b"\r\n\r\n"))
    status = int(status_text)
    if status < 200:
        raise ValueError(f"an interim answer ({status}) to a request that asked for none")
    body = received[end + 4 :]
    reusable = "close" not in headers.get("Connection", "").lower()
    if head_only or status in (204, 304):
        return status, headers, b"", reusable and not body
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return status, headers, await _dechunked(sock, bytes(body)), reusable
    length = headers.get("Content-Length")
    if length is None:  # the body ends where the connection does
        while chunk := await _received(sock):
            body += chunk
        return status, headers, bytes(body), False
    wanted = int(length)
    while len(body) < wanted:
        chunk = await _received(sock)
        if not chunk:
            raise http.client.IncompleteRead(bytes(body), wanted - len(body))
        body += chunk
    return status, headers, bytes(body[:wanted]), reusable and len(body) == wanted


async def _dechunked(sock: socket.socket, received: bytes) -> bytes:
    """A chunked body whose first bytes are ``received``, read to its last chunk and trailer."""
    buffer, body = bytearray(received), bytearray()

    async def line() -> bytes:
        while (end := buffer.find(b"\r\n")) < 0:
            chunk = await _received(sock)
            if not chunk:
                raise http.client.IncompleteRead(bytes(body))
            buffer.extend(chunk)
        found = bytes(buffer[:end])
        del buffer[: end + 2]
        return found

    while size := int((await line()).split(b";")[0], 16):
        while len(buffer) < size + 2:
            chunk = await _received(sock)
            if not chunk:
                raise http.client.IncompleteRead(bytes(body))
            buffer.extend(chunk)
        body += buffer[:size]
        del buffer[: size + 2]
    while await line():  # trailer fields, then the empty line
        pass
    return bytes(body)
