"""One bodiless HTTP/1.1 request and its whole answer, on a non-blocking socket, on the event loop.

The signed path (signed.py) sends its small GETs and HEADs over plain HTTP here, on a kept-alive
connection, without the thread hop whose two wake-ups cost more CPU than the request itself.
The answer is parsed by httptools' ``HttpResponseParser`` (llhttp, the parser uvicorn serves
with): its framing (a length, chunks with their extensions and trailers, or the connection's
end), interim 1xx answers skipped, and whether the connection may carry another request.

Errors: ``ClosedUnused`` when the server had closed the connection before it took the request
(the caller sends it again elsewhere), ``http.client.IncompleteRead`` for an answer cut short,
``MalformedAnswer`` for one that is not HTTP/1.1, ``OSError`` from the socket. The caller bounds
the whole exchange in time; each read takes at most ``_RECEIVE`` bytes, a head at most
``HEAD_LIMIT``.
"""

from __future__ import annotations

import asyncio
import http.client
import socket

import httptools

_RECEIVE = 64 << 10
"""The most one read of a small answer takes."""
HEAD_LIMIT = 64 << 10
"""The most bytes an answer's head (interim answers included) may take."""

Reply = tuple[int, http.client.HTTPMessage, bytes, bool]
"""An answer's status, headers and body, with whether its connection may carry another request."""


class ClosedUnused(Exception):
    """A kept-alive connection the server had closed before it took the request."""


class MalformedAnswer(http.client.HTTPException):
    """An answer that is not HTTP/1.1, or not one a bodiless GET or HEAD can receive."""


class _HeadEnd(Exception):
    """Stops the parser at the end of a HEAD answer's head: llhttp, told nothing of the request,
    would wait for the body its Content-Length announces."""


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
    answer = _Answer(head_only)
    parser = answer.parser
    received, ending = 0, b""
    while not answer.complete:
        try:
            data = await _received(sock)
        except ConnectionResetError as exc:
            if received:
                raise
            raise ClosedUnused from exc
        if not data:
            if not received:
                raise ClosedUnused
            answer.closed()
            break
        received += len(data)
        ending = (ending + data[-4:])[-4:]
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not answer.complete:
                cause = exc.__context__
                if isinstance(cause, MalformedAnswer):
                    raise cause from exc
                raise MalformedAnswer(f"not an HTTP/1.1 answer: {exc}") from exc
            # Ended on purpose at a HEAD answer's head, reusable only if nothing followed it;
            # else bytes followed a whole answer, which the connection cannot explain.
            answer.reusable = answer.reusable and head_only and ending == b"\r\n\r\n"
        except httptools.HttpParserUpgrade as exc:
            raise MalformedAnswer("an answer switching protocols") from exc
        if not answer.head_read and received > HEAD_LIMIT:
            raise MalformedAnswer(f"an answer's head over {HEAD_LIMIT} bytes")
    return answer.status, answer.headers, b"".join(answer.body), answer.reusable


class _Answer:
    """httptools' callbacks for one answer, with what they gathered."""

    __slots__ = (
        "body",
        "complete",
        "head_only",
        "head_read",
        "headers",
        "parser",
        "reusable",
        "status",
        "to_close",
    )

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.status = 0
        self.headers = http.client.HTTPMessage()
        self.body: list[bytes] = []
        self.head_read = False
        """Whether the final answer's head was read (past any interim answer)."""
        self.to_close = False
        """Whether the body ends where the connection does (neither a length nor chunks)."""
        self.complete = False
        self.reusable = False

    def on_message_begin(self) -> None:
        if self.complete:
            raise MalformedAnswer("bytes after the answer")  # ends the parsing: see ``exchange``
        self.headers = http.client.HTTPMessage()  # what an interim answer had is not kept

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_read:  # trailer fields are not the answer's headers
            # As http.client decodes them.
            self.headers[name.decode("iso-8859-1")] = value.decode("iso-8859-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise MalformedAnswer("an answer switching protocols to a request that asked for none")
            return  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        self.status, self.head_read = status, True
        chunked = self.headers.get("Transfer-Encoding", "").lower().rstrip().endswith("chunked")
        self.to_close = not chunked and self.headers.get("Content-Length") is None
        if self.head_only:
            # llhttp keeps no connection whose answer had no length, as a HEAD's may not.
            self.complete, self.reusable = True, self.parser.should_keep_alive()
            raise _HeadEnd

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.head_read:
            self.complete, self.reusable = True, self.parser.should_keep_alive()

    def closed(self) -> None:
        """The connection's end, before the answer's: the end of a body that ends so, else an
        answer cut short."""
        if self.head_read and self.to_close:
            self.complete, self.reusable = True, False
            return
        raise http.client.IncompleteRead(b"".join(self.body))
