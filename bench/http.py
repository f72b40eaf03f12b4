"""A lean blocking HTTP/1.1 client for the benchmark's body-carrying requests.

Why not httpx or curl: the load generator must cost far less CPU than the server it measures.
Request bodies go out with ``socket.sendfile`` (zero copy from the page cache) and response
bodies are received into one reused buffer, so a 1 GiB transfer costs the client little more than
the kernel's copy. One ``Connection`` is one keep-alive socket, used by one thread at a time.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

RECV_SIZE = 4 << 20

# Called with each received body piece; the view is only valid during the call.
BodySink = Callable[[memoryview], None]


class HTTPError(Exception):
    """The server broke the protocol or answered something the benchmark did not expect."""


@dataclass
class FileBody:
    """``length`` bytes of ``file`` from ``offset``, sent with sendfile, then ``tail`` from memory."""

    file: BinaryIO
    offset: int
    length: int
    tail: bytes = b""

    @property
    def size(self) -> int:
        return self.length + len(self.tail)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    body_size: int = 0
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def expect(self, *statuses: int) -> Response:
        if self.status not in statuses:
            raise HTTPError(f"expected {statuses}, got {self.status}: {self.body[:500]!r}")
        return self


class Connection:
    """``tls``: speak HTTPS (HTTP/1.1), verifying the server with that context."""

    def __init__(
        self, host: str, port: int, timeout: float = 300.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self._sock: socket.socket | None = None
        self._pending = bytearray()  # bytes received past the end of the last parsed piece
        self._recv_buffer = bytearray(RECV_SIZE)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._pending.clear()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:  # sendfile falls back to send() through the TLS layer
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            self._sock = sock
        return self._sock

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | FileBody | None = None,
        sink: BodySink | None = None,
    ) -> Response:
        """Send one request and read the whole response.

        Without ``sink`` the body is returned in ``Response.body``; with it, each piece goes to
        ``sink`` and only the size is kept (for large downloads).
        """
        sock = self._socket()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        size = body.size if isinstance(body, FileBody) else len(body) if body is not None else 0
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {size}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if isinstance(body, FileBody):
                sock.sendall(head)
                if body.length:
                    sent = sock.sendfile(body.file, body.offset, body.length)
                    if sent != body.length:
                        raise HTTPError(f"sendfile sent {sent} of {body.length} bytes")
                if body.tail:
                    sock.sendall(body.tail)
            else:
                sock.sendall(head + (body or b""))
            return self._read_response(method, sink)
        except BaseException:
            self.close()  # a half-read response leaves the socket unusable
            raise

    # -- response parsing ---------------------------------------------------------------------

    def _fill(self) -> None:
        assert self._sock is not None
        view = memoryview(self._recv_buffer)
        received = self._sock.recv_into(view)
        if received == 0:
            raise HTTPError("connection closed by the server")
        self._pending += view[:received]

    def _read_line_block(self, terminator: bytes) -> bytes:
        while True:
            end = self._pending.find(terminator)
            if end >= 0:
                block = bytes(self._pending[:end])
                del self._pending[: end + len(terminator)]
                return block
            if len(self._pending) > 1 << 20:
                raise HTTPError("response header too large")
            self._fill()

    def _read_response(self, method: str, sink: BodySink | None) -> Response:
        head = self._read_line_block(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HTTPError(f"bad status line {status_line!r}")
        status = int(parts[1])
        header_list: list[tuple[str, str]] = []
        for line in header_lines:
            name, _, value = line.partition(":")
            header_list.append((name.strip().lower(), value.strip()))
        headers = dict(header_list)
        response = Response(status, headers, header_list=header_list)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            self._read_chunked(response, sink)
        elif "content-length" in headers:
            self._read_exact(int(headers["content-length"]), response, sink)
        else:
            raise HTTPError("response without length (close-delimited) is not supported")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def _read_exact(self, length: int, response: Response, sink: BodySink | None) -> None:
        collected = bytearray() if sink is None else None
        remaining = length
        # Leftover bytes from the header read first, then straight from the socket.
        if self._pending:
            piece = bytes(self._pending[:remaining])
            del self._pending[: len(piece)]
            remaining -= len(piece)
            self._deliver(memoryview(piece), collected, sink)
        view = memoryview(self._recv_buffer)
        assert self._sock is not None
        while remaining > 0:
            # Fill the whole buffer before handing it on: fewer, larger pieces for the sink.
            want = min(remaining, len(view))
            filled = 0
            while filled < want:
                received = self._sock.recv_into(view[filled:], want - filled)
                if received == 0:
                    raise HTTPError(f"connection closed with {remaining} body bytes missing")
                filled += received
            remaining -= filled
            self._deliver(view[:filled], collected, sink)
        response.body_size = length
        if collected is not None:
            response.body = bytes(collected)

    @staticmethod
    def _deliver(piece: memoryview, collected: bytearray | None, sink: BodySink | None) -> None:
        if collected is not None:
            collected += piece
        elif sink is not None:
            sink(piece)

    def _read_chunked(self, response: Response, sink: BodySink | None) -> None:
        collected = bytearray()
        total = 0
        while True:
            size_line = self._read_line_block(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                self._read_line_block(b"\r\n")  # trailers end (we send none, expect none)
                break
            while len(self._pending) < size + 2:
                self._fill()
            piece = memoryview(bytes(self._pending[:size]))
            del self._pending[: size + 2]
            total += size
            if sink is None:
                collected += piece
            else:
                sink(piece)
        response.body_size = total
        if sink is None:
            response.body = bytes(collected)


class Redirects:
    """Keep-alive connections to where registries redirect blob GETs (the storage's presigned
    URLs), one per host; used by one thread at a time."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], Connection] = {}

    def get(
        self, location: str, headers: Mapping[str, str] | None = None, sink: BodySink | None = None
    ) -> Response:
        url = urlsplit(location)
        if url.scheme != "http" or url.hostname is None:
            raise HTTPError(f"cannot follow a redirect to {location[:200]!r}")
        key = (url.hostname, url.port or 80)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = Connection(*key)
        target = url.path + (f"?{url.query}" if url.query else "")
        return connection.request("GET", target, headers=headers, sink=sink)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> Redirects:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileComparer:
    """A sink that checks a download byte for byte against a region of a local file.

    Comparing with memcmp against the page cache costs the client a fraction of what hashing the
    stream would, so verification does not cap the measured throughput.
    """

    def __init__(self, path: str, offset: int, length: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._position = offset
        self._end = offset + length
        self._expected = bytearray(RECV_SIZE)
        self.mismatch_at: int | None = None

    def __call__(self, piece: memoryview) -> None:
        size = len(piece)
        if self._position + size > self._end:
            self.mismatch_at = self._position  # longer than expected
            return
        expected = memoryview(self._expected)[:size]
        got = os.preadv(self._fd, [expected], self._position)
        if got != size:
            raise HTTPError("short read of the reference file")
        # bytearray == bytearray is memcmp; memoryview == memoryview compares item by item.
        same = (
            piece.obj == self._expected
            if size == RECV_SIZE and isinstance(piece.obj, bytearray)
            else bytes(piece) == bytes(expected)
        )
        if not same and self.mismatch_at is None:
            self.mismatch_at = self._position
        self._position += size

    def close(self) -> None:
        os.close(self._fd)

    def verified(self) -> bool:
        return self.mismatch_at is None and self._position == self._end
