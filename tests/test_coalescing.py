"""A response's head goes out with its body: one TCP segment per small response, counted by the
kernel on a real connection to the registry, and every kind of response still complete and in
order on one keep-alive connection."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import time
from typing import Any

import pytest

from registry.coalescing import CoalescingTransport
from tests.support.registry import RunningRegistry

TCP_INFO_DATA_SEGS_IN = 152
"""Offset of ``tcpi_data_segs_in`` (segments that carried data) in Linux's ``struct tcp_info``."""


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sends: list[list[bytes]] = []  # one entry per call that reaches the socket

    def write(self, data: Any) -> None:
        self.sends.append([bytes(data)])

    def writelines(self, list_of_data: Any) -> None:
        self.sends.append([bytes(data) for data in list_of_data])

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        self.sends.append([b"<closed>"])


def test_head_waits_for_the_body_and_goes_with_it() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert inner.sends == []
    transport.write(b"{}")
    assert inner.sends == [[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"{}"]]
    transport.flush()  # the response completes: nothing left to send
    assert len(inner.sends) == 1


def test_head_without_body_goes_out_when_the_response_completes() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n")  # a HEAD answer
    transport.flush()
    assert inner.sends == [[b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n"]]


def test_interim_answers_and_bodies_are_never_held() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    chunk = bytearray(b"HTTP/1.1 200 looks like a head but is a reused buffer")
    transport.write(chunk)
    transport.write(memoryview(b"data"))
    assert inner.sends == [[b"HTTP/1.1 100 Continue\r\n\r\n"], [bytes(chunk)], [b"data"]]


def test_close_sends_a_held_head_first() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.close()
    assert inner.sends == [[b"HTTP/1.1 204 No Content\r\n\r\n"], [b"<closed>"]]


def _data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, TCP_INFO_DATA_SEGS_IN)[0])


def _read_response(sock: socket.socket, method: str = "GET") -> tuple[bytes, bytes]:
    """One response's head and body (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, "connection closed before the head"
        data += piece
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if method == "HEAD":
        return head, b""
    while len(body) < length:
        piece = sock.recv(max(65536, length - len(body)))
        assert piece, "connection closed before the body"
        body += piece
    assert len(body) == length
    return head, body


def _request(path: str, method: str = "GET", headers: str = "", body: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: registry\r\n{headers}\r\n".encode() + body


def test_small_responses_arrive_in_one_segment_each(registry_server: RunningRegistry) -> None:
    with socket.create_connection(("127.0.0.1", registry_server.port)) as sock:
        sock.sendall(_request("/v2/"))
        _read_response(sock)  # the connection's first answer, before counting
        time.sleep(0.1)
        before = _data_segments_in(sock)
        for _ in range(20):
            sock.sendall(_request("/v2/"))
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200")
            assert body == b"{}"
        for _ in range(10):
            sock.sendall(_request("/v2/coalescing/missing/manifests/latest"))
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 404")
            assert b"MANIFEST_UNKNOWN" in body
        time.sleep(0.1)  # every segment counted
        assert _data_segments_in(sock) - before == 30


@pytest.mark.parametrize("expect_continue", [False, True], ids=["plain", "expect-100-continue"])
def test_every_kind_of_response_in_order_on_one_connection(
    registry_server: RunningRegistry, expect_continue: bool
) -> None:
    """Uploads (202, 201, with ``Expect: 100-continue`` too), HEAD, a streamed blob, a 404
    without a body to follow: each answer complete and in order."""
    blob = os.urandom(3 << 20)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    name = f"coalescing/kinds-{'continue' if expect_continue else 'plain'}"
    with socket.create_connection(("127.0.0.1", registry_server.port)) as sock:
        sock.settimeout(30)
        sock.sendall(_request(f"/v2/{name}/blobs/uploads/", "POST", "Content-Length: 0\r\n"))
        head, _ = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 202")
        location = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"location:")
        )
        separator = "&" if "?" in location else "?"
        expect = "Expect: 100-continue\r\n" if expect_continue else ""
        sock.sendall(
            _request(
                f"{location}{separator}digest={digest}", "PUT", f"Content-Length: {len(blob)}\r\n{expect}"
            )
        )
        if expect_continue:
            interim = sock.recv(25)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"  # sent at once, not held
        sock.sendall(blob)
        head, _ = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 201"), head
        sock.sendall(_request(f"/v2/{name}/blobs/{digest}", "HEAD"))
        head, _ = _read_response(sock, "HEAD")
        assert head.startswith(b"HTTP/1.1 200")
        assert f"content-length: {len(blob)}".encode() in head.lower()
        sock.sendall(_request(f"/v2/{name}/blobs/{digest}"))
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert body == blob
        sock.sendall(_request(f"/v2/{name}/blobs/sha256:{'0' * 64}", "HEAD"))
        head, _ = _read_response(sock, "HEAD")
        assert head.startswith(b"HTTP/1.1 404")
        sock.sendall(_request("/v2/"))
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert body == b"{}"
