"""Large upload bodies read past the HTTP parser, straight into the upload's batches: whole and in
order however the client sends them, with the connection right for the next request, and an
upload a client walks away from mid-body still resumable. A real server over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from registry.api.bodies import RequestBody
from registry.rawbody import RAW_MIN, raw_body
from tests.support.loopserver import LoopServer
from tests.support.registry import RunningRegistry
from tests.support.waiting import until

MIB = 1 << 20


def _read_response(sock: socket.socket, pending: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """One response (Content-Length framed): status, headers, body, and the bytes after it."""
    data = pending
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, "connection closed before the head"
        data += piece
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        piece = sock.recv(max(65536, length - len(rest)))
        assert piece, "connection closed before the body"
        rest += piece
    return int(lines[0].split()[1]), headers, rest[:length], rest[length:]


def _head(method: str, target: str, headers: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: registry\r\n{headers}\r\n".encode()


def _start(sock: socket.socket, name: str) -> str:
    sock.sendall(_head("POST", f"/v2/{name}/blobs/uploads/", "Content-Length: 0\r\n"))
    status, headers, _, _ = _read_response(sock)
    assert status == 202
    return headers["location"]


def _with(location: str, query: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}{query}"


def _blob(registry: RunningRegistry, name: str, digest: str) -> bytes:
    with socket.create_connection(("127.0.0.1", registry.port), timeout=60) as sock:
        sock.sendall(_head("GET", f"/v2/{name}/blobs/{digest}"))
        status, _, body, _ = _read_response(sock)
    assert status == 200
    return body


def _pieces(data: bytes) -> list[bytes]:
    """``data`` cut as a slow and uneven client sends it: tiny pieces, odd ones, large ones."""
    sizes = [1, 4095, 17, 70_000, 3 * MIB + 5, 1, 256 << 10]
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    return [*pieces, data[offset:]]


@pytest.mark.parametrize("expect_continue", [False, True], ids=["plain", "expect-100-continue"])
def test_a_body_in_uneven_pieces_arrives_whole_and_the_next_request_behind_it_is_answered(
    registry_server: RunningRegistry, expect_continue: bool
) -> None:
    blob = os.urandom(5 * MIB + 13)
    assert len(blob) >= RAW_MIN
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    name = f"rawbody/uneven-{'continue' if expect_continue else 'plain'}"
    with socket.create_connection(("127.0.0.1", registry_server.port), timeout=60) as sock:
        location = _start(sock, name)
        expect = "Expect: 100-continue\r\n" if expect_continue else ""
        head = _head("PUT", _with(location, f"digest={digest}"), f"Content-Length: {len(blob)}\r\n{expect}")
        pieces = _pieces(blob)
        if expect_continue:
            sock.sendall(head)
            assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        else:
            pieces[0] = head + pieces[0]
        # The next request goes in the same send as the body's last byte: it must be read as a
        # request, not as body.
        pieces[-1] += _head("GET", "/v2/")
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.01)  # each piece on its own, some while the server waits for more
        status, headers, body, rest = _read_response(sock)
        assert status == 201, body
        assert headers["docker-content-digest"] == digest
        status, _, body, rest = _read_response(sock, rest)
        assert (status, body, rest) == (200, b"{}", b"")
    assert _blob(registry_server, name, digest) == blob


def test_every_chunk_on_one_keep_alive_connection_arrives_whole(registry_server: RunningRegistry) -> None:
    """Chunked pushes: one PATCH after another on one connection, each body read past the parser."""
    chunks = [os.urandom(size) for size in (2 * MIB + 1, RAW_MIN, 3 * MIB - 7)]
    blob = b"".join(chunks)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    name = "rawbody/chunks"
    with socket.create_connection(("127.0.0.1", registry_server.port), timeout=60) as sock:
        location = _start(sock, name)
        offset = 0
        for chunk in chunks:
            content_range = f"{offset}-{offset + len(chunk) - 1}"
            sock.sendall(
                _head(
                    "PATCH", location, f"Content-Length: {len(chunk)}\r\nContent-Range: {content_range}\r\n"
                )
                + chunk
            )
            status, headers, _, _ = _read_response(sock)
            offset += len(chunk)
            assert (status, headers["range"]) == (202, f"0-{offset - 1}")
            location = headers["location"]
        sock.sendall(_head("PUT", _with(location, f"digest={digest}"), "Content-Length: 0\r\n"))
        status, _, body, _ = _read_response(sock)
        assert status == 201, body
    assert _blob(registry_server, name, digest) == blob
    line = next(
        line
        for line in registry_server.log().splitlines()
        if f"PATCH /v2/{name}/" in line and " 202 " in line
    )
    assert re.search(rf'" 202 {len(chunks[0])} 0 ', line), f"the access log did not count the body: {line}"


def test_a_client_gone_mid_body_leaves_the_upload_to_resume_on_another_connection(
    registry_server: RunningRegistry,
) -> None:
    blob = os.urandom(12 * MIB + 3)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    name = "rawbody/gone"
    with socket.create_connection(("127.0.0.1", registry_server.port), timeout=60) as sock:
        location = _start(sock, name)
        sock.sendall(
            _head("PATCH", location, f"Content-Length: {len(blob)}\r\nContent-Range: 0-{len(blob) - 1}\r\n")
        )
        sock.sendall(blob[: 9 * MIB])
    # The server takes what it wrote of the cut request as the upload's content; once that
    # request has ended (its line in the access log), the upload's size stays put.
    until(
        lambda: re.search(rf'"PATCH /v2/{name}/blobs/uploads/\S+" 400 ', registry_server.log()),
        what="for the cut request's access line",
    )
    with socket.create_connection(("127.0.0.1", registry_server.port), timeout=60) as sock:
        sock.sendall(_head("GET", location))
        status, headers, _, _ = _read_response(sock)
        assert status == 204
        size = int(headers["range"].split("-")[1]) + 1
        assert 0 < size <= 9 * MIB
        rest = blob[size:]
        sock.sendall(
            _head(
                "PUT",
                _with(location, f"digest={digest}"),
                f"Content-Length: {len(rest)}\r\nContent-Range: {size}-{len(blob) - 1}\r\n",
            )
            + rest
        )
        status, _, body, _ = _read_response(sock)
        assert status == 201, body
    assert _blob(registry_server, name, digest) == blob


# --- the protocol itself, on both event loops: which bytes went past the parser -----------------


class BodyReader:
    """An application that reads each request's body as the upload path does, in batches of
    ``batch`` bytes, up to ``?stop=N`` bytes, and answers what it read and how."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        query = dict(pair.split("=") for pair in scope["query_string"].decode().split("&") if pair)
        stop = int(query.get("stop", 1 << 40))
        raw = raw_body(scope)
        body = RequestBody(receive, raw)
        buffer = memoryview(bytearray(1 << 20))
        hasher, total = hashlib.sha256(), 0
        try:
            while total < stop:
                want = min(len(buffer), stop - total)
                count = await body.fill(buffer[:want])
                hasher.update(buffer[:count])
                total += count
                if count < want:
                    break
        except ClientDisconnect:
            self.disconnects += 1
            return
        answer = json.dumps(
            {"total": total, "sha256": hasher.hexdigest(), "raw": None if raw is None else raw.received}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


Served = tuple[LoopServer, BodyReader]
"""A server of the protocol and the application it serves."""

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    app = BodyReader()
    served = LoopServer(LOOPS[request.param](), app)
    try:
        yield served, app
    finally:
        served.close()


def _answer(sock: socket.socket, pending: bytes = b"") -> tuple[dict[str, Any], bytes]:
    status, _, body, rest = _read_response(sock, pending)
    assert status == 200, body
    return json.loads(body), rest


def test_past_the_parser_the_body_goes_straight_into_the_buffers(
    served: Served,
) -> None:
    server, _ = served
    blob = os.urandom(3 * MIB + 5)
    with server.connect() as sock:
        pieces = _pieces(blob)
        pieces[0] = _head("PUT", "/upload", f"Content-Length: {len(blob)}\r\n") + pieces[0]
        pieces[-1] += _head("GET", "/next", "Content-Length: 0\r\n")
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.005)
        answer, rest = _answer(sock)
        assert (answer["total"], answer["sha256"]) == (len(blob), hashlib.sha256(blob).hexdigest())
        # The parser takes what came with the head; the rest of the body went past it.
        assert len(blob) - (256 << 10) <= answer["raw"] < len(blob)
        answer, rest = _answer(sock, rest)
        assert (answer["total"], rest) == (0, b"")


def test_after_100_continue_the_body_goes_past_the_parser(served: Served) -> None:
    server, _ = served
    blob = os.urandom(RAW_MIN + 1)
    with server.connect() as sock:
        sock.sendall(_head("PUT", "/upload", f"Content-Length: {len(blob)}\r\nExpect: 100-continue\r\n"))
        assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(blob)
        answer, _ = _answer(sock)
    assert (answer["total"], answer["sha256"]) == (len(blob), hashlib.sha256(blob).hexdigest())
    # The first read after the interim answer goes to the parser, the rest past it.
    assert len(blob) - (256 << 10) <= answer["raw"] < len(blob)


@pytest.mark.parametrize(
    ("size", "headers"),
    [(RAW_MIN - 1, ""), (2 * MIB, "Transfer-Encoding: chunked\r\n")],
    ids=["small", "chunked-encoding"],
)
def test_small_and_chunked_bodies_take_the_parsers_path(served: Served, size: int, headers: str) -> None:
    server, _ = served
    blob = os.urandom(size)
    if headers:
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(blob[i : i + 65536]), blob[i : i + 65536]) for i in range(0, size, 65536)
        )
        payload += b"0\r\n\r\n"
    else:
        headers, payload = f"Content-Length: {size}\r\n", blob
    with server.connect() as sock:
        sock.sendall(_head("PUT", "/upload", headers) + payload)
        answer, _ = _answer(sock)
    assert answer == {"total": size, "sha256": hashlib.sha256(blob).hexdigest(), "raw": None}


def test_a_body_left_unread_is_dropped_and_the_connection_goes_on(
    served: Served,
) -> None:
    server, _ = served
    blob = os.urandom(6 * MIB)
    with server.connect() as sock:
        sock.sendall(_head("PUT", f"/upload?stop={2 * MIB}", f"Content-Length: {len(blob)}\r\n"))
        time.sleep(0.05)
        sock.sendall(blob + _head("PUT", "/after", "Content-Length: 3\r\n") + b"abc")
        answer, rest = _answer(sock)
        assert (answer["total"], answer["sha256"]) == (2 * MIB, hashlib.sha256(blob[: 2 * MIB]).hexdigest())
        answer, rest = _answer(sock, rest)
        assert answer == {"total": 3, "sha256": hashlib.sha256(b"abc").hexdigest(), "raw": None}


def test_a_client_gone_mid_body_is_a_disconnect(served: Served) -> None:
    server, app = served
    with server.connect() as sock:
        sock.sendall(_head("PUT", "/upload", f"Content-Length: {8 * MIB}\r\n"))
        time.sleep(0.05)
        sock.sendall(os.urandom(3 * MIB))
    until(lambda: app.disconnects, interval=0.01, what="for the application to see the disconnect")
    with server.connect() as sock:  # still serving
        sock.sendall(_head("PUT", "/upload", "Content-Length: 2\r\n") + b"ok")
        answer, _ = _answer(sock)
    assert answer["total"] == 2


def test_a_connection_that_closes_after_its_request_still_closes(
    served: Served,
) -> None:
    server, _ = served
    blob = os.urandom(2 * MIB)
    with server.connect() as sock:
        sock.sendall(
            f"PUT /upload HTTP/1.0\r\nHost: registry\r\nContent-Length: {len(blob)}\r\n\r\n".encode() + blob
        )
        answer, rest = _answer(sock)
        assert answer["total"] == len(blob)
        assert answer["raw"] > 0
        assert rest == b""
        assert sock.recv(1) == b"", "the connection stayed open after an HTTP/1.0 request"
