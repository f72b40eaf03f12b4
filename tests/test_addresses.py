"""A connection's addresses in the request's scope come from the event loop, not from asking the
kernel again: the same addresses as before over TCP and unix sockets on both event loops, and a
registry worker makes no ``getsockname`` or ``getpeername`` call of its own per connection."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import uvloop
from starlette.types import Receive, Scope, Send

from tests.integrity.workers import traced
from tests.support.loopserver import LoopServer
from tests.support.registry import StartRegistry

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
REQUEST = b"GET / HTTP/1.1\r\nHost: registry\r\n\r\n"
CONNECTIONS = 5
ADDRESS_CALL = re.compile(r"^\d+\s+(getsockname|getpeername)\(", re.MULTILINE)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"server": scope["server"], "client": scope["client"]}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def scope_addresses(sock: socket.socket) -> dict[str, object]:
    sock.sendall(REQUEST)
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        piece = sock.recv(4096)
        assert piece, answer
        answer += piece
    found: dict[str, object] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return found


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_tcp_addresses_are_the_connections(loop: str) -> None:
    server = LoopServer(LOOPS[loop](), app)
    try:
        with server.connect() as sock:
            found = scope_addresses(sock)
            assert found == {"server": list(sock.getpeername()), "client": list(sock.getsockname())}
    finally:
        server.close()


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_unix_socket_has_its_path_and_no_client(loop: str, tmp_path: Path) -> None:
    path = str(tmp_path / "registry.sock")
    server = LoopServer(LOOPS[loop](), app, path=path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(path)
            assert scope_addresses(sock) == {"server": [path, None], "client": None}
    finally:
        server.close()


def test_a_worker_asks_the_kernel_for_addresses_once_per_connection(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """uvloop reads both addresses as it accepts a connection: one ``getsockname`` and one
    ``getpeername``; uvicorn's own way asked for them again, four calls more."""
    registry = start_registry(workers=1)
    assert registry.process is not None
    out = tmp_path / "strace.out"
    with traced(registry.process.pid, "getsockname,getpeername", out):
        for _ in range(CONNECTIONS):
            with httpx.Client(base_url=f"http://127.0.0.1:{registry.port}") as client:
                assert client.get("/v2/").status_code == 200
    calls = ADDRESS_CALL.findall(out.read_text())
    assert calls.count("getsockname") == CONNECTIONS
    assert calls.count("getpeername") == CONNECTIONS
