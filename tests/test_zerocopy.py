"""Blob downloads from filesystem storage go from the file to the socket with ``sendfile``: the
system calls of the registry's worker, traced while it answers, carry the bytes in ``sendfile``
and none in writes. Every answer stays complete and in order on a keep-alive connection (full,
ranges, a HEAD and an error after them), and a client that leaves mid-download costs the next
one nothing."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integrity.workers import process_group
from tests.support.pushing import push_blob
from tests.support.registry import RunningRegistry, StartRegistry

SIZE = (24 << 20) + 12345
"""Several of the sender's windows, and not a whole number of pages."""
SYSCALL = re.compile(r"^\d+\s+(sendfile|write|writev|sendmsg|sendto)\(.*\)\s+=\s+(\d+)", re.MULTILINE)


@pytest.fixture(scope="module")
def one_worker(start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory) -> RunningRegistry:
    """Filesystem storage, one worker: the process to trace."""
    return start_registry(workers=1, root=tmp_path_factory.mktemp("zerocopy") / "data")


@pytest.fixture(scope="module")
def blob(one_worker: RunningRegistry) -> tuple[str, bytes]:
    content = os.urandom(SIZE)
    with httpx.Client(base_url=one_worker.url, timeout=60) as client:
        digest = push_blob(client, "zerocopy/blobs", content)
    return digest, content


def worker_pid(registry: RunningRegistry) -> int:
    assert registry.process is not None
    leader = registry.process.pid
    workers = [pid for pid in process_group(leader) if pid != leader]
    return workers[0] if workers else leader


def traced_sends(registry: RunningRegistry, workdir: Path, action: Callable[[], None]) -> dict[str, int]:
    """Bytes each sending system call of the worker carried while ``action`` ran."""
    out = workdir / "strace.out"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=sendfile,write,writev,sendmsg,sendto", "-o", str(out),
         "-p", str(worker_pid(registry))],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # attached (strace has no signal for it but its first output)
        action()
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    sent = {"sendfile": 0, "write": 0}
    for call, result in SYSCALL.findall(out.read_text()):
        sent["sendfile" if call == "sendfile" else "write"] += int(result)
    return sent


def test_the_file_goes_to_the_socket_by_sendfile(
    one_worker: RunningRegistry, blob: tuple[str, bytes], tmp_path: Path
) -> None:
    digest, _content = blob
    received: list[bytes] = []

    def download() -> None:
        response = httpx.get(f"{one_worker.url}/v2/zerocopy/blobs/blobs/{digest}", timeout=60)
        assert response.status_code == 200
        received.append(response.content)

    sent = traced_sends(one_worker, tmp_path, download)
    assert hashlib.sha256(received[0]).hexdigest() == digest.removeprefix("sha256:")
    assert sent["sendfile"] == SIZE
    assert sent["write"] < 4096  # the response head only


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


def test_answers_in_order_on_one_connection(one_worker: RunningRegistry, blob: tuple[str, bytes]) -> None:
    digest, content = blob
    path = f"/v2/zerocopy/blobs/blobs/{digest}"
    requests = [
        ("GET", ""),
        ("GET", "Range: bytes=4097-9000000\r\n"),
        ("GET", "Range: bytes=-100\r\n"),
        ("GET", f"Range: bytes={SIZE - 1}-\r\n"),
    ]
    with socket.create_connection(("127.0.0.1", one_worker.port)) as sock:
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
    one_worker: RunningRegistry, blob: tuple[str, bytes]
) -> None:
    digest, content = blob
    path = f"/v2/zerocopy/blobs/blobs/{digest}"
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", one_worker.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        # closed with most of the blob unsent
    response = httpx.get(f"{one_worker.url}{path}", timeout=60)
    assert response.status_code == 200
    assert response.content == content
    assert "Traceback" not in one_worker.log()
