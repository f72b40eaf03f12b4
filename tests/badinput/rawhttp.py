"""HTTP/1.1 over a plain socket: the request target goes out byte for byte, never normalised."""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def raw_request(
    port: int,
    method: str,
    target: bytes,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    chunked: bool = False,
) -> RawResponse:
    """Send one request on a fresh connection to 127.0.0.1:``port``.

    A ``Content-Length`` in ``headers`` is sent as given (it may lie); otherwise it is the body's
    length, or the body goes out with chunked transfer encoding when ``chunked``.
    """
    names = {name.lower() for name, _ in headers}
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        f"Host: 127.0.0.1:{port}".encode(),
        b"Connection: close",
    ]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    payload = body or b""
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        payload = (
            b"".join(
                b"%x\r\n%s\r\n" % (len(payload[i : i + 65536]), payload[i : i + 65536])
                for i in range(0, len(payload), 65536)
            )
            + b"0\r\n\r\n"
        )
    elif body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}".encode())
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)  # the server may answer (e.g. 413) without reading everything
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        data = response.read()
        return RawResponse(response.status, response.headers, data)
