"""Blob downloads from filesystem storage over a unix socket (``http.net: unix``, nginx on the
same machine) go from the file to the socket with ``sendfile``: the system calls of the
registry's worker, traced while it answers, carry the bytes in ``sendfile`` and none in writes;
over TCP, in writes. Every answer stays complete and in order on a keep-alive connection (full,
ranges, a HEAD and an error after them), and a client that leaves mid-download costs the next
one nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from registry.zerocopy import ZEROCOPY_SEND, ZeroCopyHTTPProtocol
from tests.integrity.workers import traced
from tests.support.launcher import CLEAN_ENV, DOCKYARD, wait_for_socket, write_config
from tests.support.processes import ServerProcess
from tests.support.pushing import push_blob
from tests.support.registry import RunningRegistry, StartRegistry

SIZE = (24 << 20) + 12345
"""Several of the sender's windows, and not a whole number of pages."""
SYSCALL = re.compile(
    r"^\d+\s+(?:<\.\.\. )?(sendfile|write|writev|sendmsg|sendto)(?:\(.*\)| resumed>.*)\s+=\s+(\d+)",
    re.MULTILINE,
)
"""A sending call's bytes, also where strace splits it (``<... write resumed>) = N``) around
another thread's call (the worker thread bringing in the next window's pages)."""


class Listener:
    """One registry process (one worker, the process to trace) and how to reach it."""

    def __init__(self, pid: int, address: str | tuple[str, int], log: Callable[[], str]) -> None:
        self.pid = pid
        self.address = address
        self.log = log

    def connect(self) -> socket.socket:
        if isinstance(self.address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.address)
            return sock
        return socket.create_connection(self.address)

    def client(self) -> httpx.Client:
        if isinstance(self.address, str):
            transport = httpx.HTTPTransport(uds=self.address)
            return httpx.Client(transport=transport, base_url="http://registry", timeout=60)
        return httpx.Client(base_url=f"http://{self.address[0]}:{self.address[1]}", timeout=60)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zerocopy") / "data"


@pytest.fixture(scope="module")
def over_tcp(start_registry: StartRegistry, root: Path) -> Listener:
    registry: RunningRegistry = start_registry(workers=1, root=root)
    assert registry.process is not None
    return Listener(registry.process.pid, ("127.0.0.1", registry.port), registry.log)


@pytest.fixture(scope="module")
def over_unix(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    workdir = tmp_path_factory.mktemp("zerocopy-unix")
    path = workdir / "registry.sock"
    config = write_config(
        workdir / "config.yml",
        {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(root)}},
            "http": {"net": "unix", "addr": str(path)},
        },
    )
    command = [DOCKYARD, "serve", str(config), "--workers", "1"]
    process = ServerProcess(command, workdir / "serve.log", env=CLEAN_ENV)
    try:
        wait_for_socket(process, path)
        yield Listener(process.pid, str(path), process.log)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def blob(over_tcp: Listener) -> tuple[str, bytes]:
    content = os.urandom(SIZE)
    with over_tcp.client() as client:
        digest = push_blob(client, "zerocopy/blobs", content)
    return digest, content


def traced_sends(pid: int, workdir: Path, action: Callable[[], None]) -> dict[str, int]:
    """Bytes the sending system calls of process ``pid`` (and its workers) carried while ``action`` ran."""
    out = workdir / "strace.out"
    with traced(pid, "sendfile,write,writev,sendmsg,sendto", out):
        action()
    sent = {"sendfile": 0, "write": 0}
    for call, result in SYSCALL.findall(out.read_text()):
        sent["sendfile" if call == "sendfile" else "write"] += int(result)
    return sent


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_the_file_goes_to_a_unix_socket_by_sendfile(
    request: pytest.FixtureRequest, kind: str, blob: tuple[str, bytes], tmp_path: Path
) -> None:
    listener: Listener = request.getfixturevalue(f"over_{kind}")
    digest, _content = blob
    received: list[bytes] = []

    def download() -> None:
        with listener.client() as client:
            response = client.get(f"/v2/zerocopy/blobs/blobs/{digest}")
        assert response.status_code == 200
        received.append(response.content)

    sent = traced_sends(listener.pid, tmp_path, download)
    assert hashlib.sha256(received[0]).hexdigest() == digest.removeprefix("sha256:")
    if kind == "unix":
        assert sent["sendfile"] == SIZE
        assert sent["write"] < 4096  # the response head only
    else:
        assert sent["sendfile"] == 0
        assert sent["write"] > SIZE


class Responses:
    """Responses read one after another from a connection, Content-Length framed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _fill(self) -> None:
        piece = self.sock.recv(1 << 20)
        assert piece, "connection closed before the response ended"
        self.data += piece

    def next(self, method: str = "GET") -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in self.data:
            self._fill()
        head, self.data = self.data.split(b"\r\n\r\n", 1)
        match = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
        length = int(match.group(1)) if match and method != "HEAD" else 0
        while len(self.data) < length:
            self._fill()
        body, self.data = self.data[:length], self.data[length:]
        return head, body


def test_answers_in_order_on_one_connection(over_unix: Listener, blob: tuple[str, bytes]) -> None:
    digest, content = blob
    path = f"/v2/zerocopy/blobs/blobs/{digest}"
    requests = [
        ("GET", ""),
        ("GET", "Range: bytes=4097-9000000\r\n"),
        ("GET", "Range: bytes=-100\r\n"),
        ("GET", f"Range: bytes={SIZE - 1}-\r\n"),
    ]
    with over_unix.connect() as sock:
        # All sent at once: pipelined requests are answered one after another.
        sock.sendall(b"".join(f"{m} {path} HTTP/1.1\r\nHost: r\r\n{h}\r\n".encode() for m, h in requests))
        responses = Responses(sock)
        answers = [responses.next() for _ in requests]
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
        head, _ = responses.next("HEAD")
        assert head.startswith(b"HTTP/1.1 200")
        assert f"content-length: {SIZE}".encode() in head.lower()
        sock.sendall(b"GET /v2/zerocopy/blobs/blobs/sha256:" + b"0" * 64 + b" HTTP/1.1\r\nHost: r\r\n\r\n")
        head, body = responses.next()
        assert head.startswith(b"HTTP/1.1 404")
        assert b"BLOB_UNKNOWN" in body
    assert [head.split(b"\r\n", 1)[0] for head, _ in answers] == [b"HTTP/1.1 200 OK"] + [
        b"HTTP/1.1 206 Partial Content"
    ] * 3
    assert [body for _, body in answers] == [content, content[4097:9000001], content[-100:], content[-1:]]


def test_a_client_leaving_mid_download_leaves_the_worker_serving(
    over_unix: Listener, blob: tuple[str, bytes]
) -> None:
    digest, content = blob
    path = f"/v2/zerocopy/blobs/blobs/{digest}"
    for _ in range(3):
        with over_unix.connect() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        # closed with most of the blob unsent
    with over_unix.client() as client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.content == content
    assert "Traceback" not in over_unix.log()


def test_a_stalled_download_ends_with_the_drain(blob: tuple[str, bytes], root: Path, tmp_path: Path) -> None:
    """SIGTERM while a client takes nothing of a file being sent: at the drain timeout the
    connection is closed and the send ends with it; the worker exits on its own, cleanly."""
    digest, _content = blob
    path = tmp_path / "registry.sock"
    config = write_config(
        tmp_path / "config.yml",
        {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(root)}},
            "http": {"net": "unix", "addr": str(path), "draintimeout": "1s"},
        },
    )
    process = ServerProcess(
        [DOCKYARD, "serve", str(config), "--workers", "1"], tmp_path / "serve.log", env=CLEAN_ENV
    )
    try:
        wait_for_socket(process, path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(str(path))
            stalled.sendall(f"GET /v2/zerocopy/blobs/blobs/{digest} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
            assert stalled.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)  # the send is waiting for the socket to take more
            process.signal_group(signal.SIGTERM)
            # uvicorn ends a clean stop by raising the signal again; an overdue one exits with 1.
            assert process.process.wait(timeout=30) in {0, -signal.SIGTERM}
    finally:
        process.stop()
    log = process.log()
    assert "drain timeout (1s): closing 1 connections" in log
    assert "exiting without them" not in log
    assert "Traceback" not in log


class _SocketTransport(asyncio.Transport):
    """What a connection's protocol asks of its transport, for a socket at ``sockname``."""

    def __init__(self, sockname: object) -> None:
        super().__init__()
        self.extra = {"sockname": sockname, "peername": "" if isinstance(sockname, str) else ("127.0.0.1", 1)}

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass  # the application here answers nothing

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("request_line", "sockname", "offered"),
    [
        ("GET /v2/team/app/blobs/sha256:" + "a" * 64, "/run/dockyard/registry.sock", True),
        ("GET /v2/", "/run/dockyard/registry.sock", False),
        ("GET /v2/team/app/manifests/latest", "/run/dockyard/registry.sock", False),
        ("HEAD /v2/team/app/blobs/sha256:" + "a" * 64, "/run/dockyard/registry.sock", False),
        ("GET /v2/team/app/blobs/sha256:" + "a" * 64, ("127.0.0.1", 5000), False),
    ],
)
def test_only_blob_downloads_on_a_unix_socket_are_offered_sendfile(
    request_line: str, sockname: object, offered: bool
) -> None:
    """Every other request is spared the extension and the wrapped send, which cost CPU on each
    request behind nginx (bench/TLS.md)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    async def connect() -> ZeroCopyHTTPProtocol:
        config = uvicorn.Config(app, lifespan="off", log_config=None)
        protocol = ZeroCopyHTTPProtocol(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(_SocketTransport(sockname))
        protocol.data_received(f"{request_line} HTTP/1.1\r\nHost: registry\r\n\r\n".encode())
        await asyncio.sleep(0)  # the request's task runs the application
        return protocol

    protocol = asyncio.run(connect())
    assert protocol.cycle is not None
    assert protocol.cycle.scope is protocol.scope
    assert (ZEROCOPY_SEND in (protocol.scope.get("extensions") or {})) is offered
    assert ("send" in vars(protocol.cycle)) is offered  # uvicorn's own send, unwrapped
