"""A worker on S3 gives back the memory a burst of uploads freed once it falls idle
(``registry/heaptrim.py``): after 16 clients at once each send a blob as one chunked-encoding
PATCH, which the driver gathers toward its parts, the worker's resident memory returns close to
its idle figure instead of staying some 10 MiB above it until the next burst."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ceph import CephRGW
from tests.support.registry import StartRegistry, s3_storage

pytestmark = pytest.mark.s3

MIB = 1 << 20
PUSHERS = 16
BLOB = 16 * MIB
PIECE = 256 << 10
ROUNDS = 2
KEPT = 10 * MIB
"""Resident memory a worker may keep above its idle figure after the bursts: what they left in
use (connections' buffers, the driver's pools, imports of first use), 5 to 7 MiB as measured;
without the trim it kept 14 to 17 MiB."""
SETTLE = 30.0
"""Seconds to wait for the worker to fall idle and give the memory back, on a loaded machine."""

REPOSITORY = "memory/burst"


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def settled(pid: int) -> int:
    """The process's resident memory once it stops changing (two readings a few seconds apart
    agree within a page or two), or the last reading after SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    last = resident(pid)
    while time.monotonic() < deadline:
        time.sleep(3.0)
        now = resident(pid)
        if abs(now - last) <= 2 * 4096:
            return now
        last = now
    return last


def pieces(head: bytes, body: bytes) -> Iterator[bytes]:
    yield head
    for offset in range(0, len(body), PIECE):
        yield body[offset : offset + PIECE]


def burst(url: str, body: bytes) -> None:
    """PUSHERS clients at once, each pushing a distinct blob as one PATCH of unannounced length."""
    barrier = threading.Barrier(PUSHERS)
    failures: list[BaseException] = []

    def push(index: int) -> None:
        head = os.urandom(16) + index.to_bytes(4, "big")
        digest = hashlib.sha256(head)
        digest.update(body)
        try:
            with httpx.Client(base_url=url, timeout=300) as http:
                barrier.wait()
                started = http.post(f"/v2/{REPOSITORY}/blobs/uploads/")
                assert started.status_code == 202, started.text
                patched = http.patch(started.headers["Location"], content=pieces(head, body))
                assert patched.status_code == 202, patched.text
                finished = http.put(
                    patched.headers["Location"], params={"digest": f"sha256:{digest.hexdigest()}"}
                )
                assert finished.status_code == 201, finished.text
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=push, args=(index,)) for index in range(PUSHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]


def test_a_worker_gives_back_what_a_burst_of_uploads_freed(
    start_registry: StartRegistry, ceph_rgw: CephRGW
) -> None:
    registry = start_registry({"storage": s3_storage(ceph_rgw)}, workers=1)
    assert registry.process is not None
    pid = registry.process.pid  # one worker: the server process itself
    body = os.urandom(BLOB)
    with httpx.Client(base_url=registry.url) as http:
        assert http.get("/v2/").status_code == 200  # the first request's one-off imports
    idle = settled(pid)
    for _ in range(ROUNDS):
        burst(registry.url, body)
    after = settled(pid)
    assert after - idle <= KEPT, f"idle {idle / MIB:.1f} MiB, after the bursts {after / MIB:.1f} MiB"
