"""A TLS handshake on the plain-HTTP port (what Docker tries first) is told about once per
client address at info level, and still answered with the HTTP 400 that makes Docker fall back."""

from __future__ import annotations

import hashlib
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from registry.tlsprobe import RecentAddresses
from tests.support.processes import ServerProcess, free_port
from tests.support.registry import default_config

TOLD = "a client tried TLS on this plain-HTTP port; Docker does this before falling back to HTTP"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    config = {**default_config(tmp_path / "data"), "http": {"addr": f"127.0.0.1:{port}"}}
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    # One worker: each worker tells about the addresses it has seen itself.
    process = ServerProcess(
        [sys.executable, "-m", "registry", "serve", str(config_path), "--workers", "1"],
        tmp_path / "registry.log",
    )
    try:
        process.wait_http(f"http://127.0.0.1:{port}/v2/")
        yield process, port
    finally:
        process.stop()


def client_hello() -> bytes:
    """The first flight of a real TLS client, as Docker's would be."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="registry.example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def send_raw(port: int, data: bytes, source: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def tls_handshake(port: int, source: str) -> None:
    context = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock,
        pytest.raises(ssl.SSLError),  # the port answers in HTTP
    ):
        context.wrap_socket(sock, server_hostname="registry.example")


def wait_for_lines(process: ServerProcess, text: str, count: int) -> list[str]:
    """The log's lines holding ``text`` once there are ``count``, or after a minute (a loaded
    machine's workers write late, never this late)."""
    for _ in range(1200):
        lines = [line for line in process.log().splitlines() if text in line]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return [line for line in process.log().splitlines() if text in line]


def test_tls_attempts_are_told_once_per_client_address(served: tuple[ServerProcess, int]) -> None:
    process, port = served
    for _ in range(3):
        tls_handshake(port, "127.0.0.2")
    tls_handshake(port, "127.0.0.3")
    answer = send_raw(port, client_hello(), "127.0.0.3")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]  # Docker falls back to HTTP on this

    lines = wait_for_lines(process, TOLD, 2)
    assert len(lines) == 2, lines
    assert any("INFO" in line and "127.0.0.2" in line for line in lines), lines
    assert any("INFO" in line and "127.0.0.3" in line for line in lines), lines
    assert "Invalid HTTP request" not in process.log()
    assert httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200


def test_other_malformed_requests_are_still_warned_about(served: tuple[ServerProcess, int]) -> None:
    process, port = served
    assert send_raw(port, b"\x16\x03garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert send_raw(port, b"NOT HTTP AT ALL\x00\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    lines = wait_for_lines(process, "Invalid HTTP request", 2)
    assert len(lines) == 2, process.log()
    assert TOLD not in process.log()


def test_a_body_that_starts_like_a_handshake_is_a_body(served: tuple[ServerProcess, int]) -> None:
    """Only a connection's first bytes can be a handshake: a body sent after its headers is data."""
    _, port = served
    hello = client_hello()
    digest = "sha256:" + hashlib.sha256(hello).hexdigest()
    head = (
        f"POST /v2/tls/probe/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {len(hello)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        time.sleep(0.2)  # the body arrives on its own
        sock.sendall(hello)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]
    assert httpx.get(f"http://127.0.0.1:{port}/v2/tls/probe/blobs/{digest}").content == hello


def test_remembered_addresses_are_bounded() -> None:
    recent = RecentAddresses(3)
    assert [recent.add(a) for a in ("a", "b", "c", "a", "d")] == [True, True, True, False, True]
    assert recent.add("a") is False  # seen again recently: still remembered
    assert recent.add("b") is True  # the least recently seen was forgotten
