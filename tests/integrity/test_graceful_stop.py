"""SIGTERM while uploads are in flight: new connections are refused at once, requests get the drain
timeout to finish, the server exits soon after it, and every interrupted upload resumes.

Each run holds uploads of three kinds across the signal: stalled (a PATCH, or the PUT that
finishes the upload, that declared 8 MiB, sent 1 MiB and stopped), trickling without end, and
trickling to an end within the drain timeout. From the signal on a prober connects every few
milliseconds. The registry is then started again on the same storage, and every upload
continues from the ``Range`` its status reports and finishes with the right digest.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from registry.supervisor import EXIT_GRACE, longest_stop
from tests.integrity.workers import process_group
from tests.support.images import digest_of
from tests.support.pushing import expect, start_upload
from tests.support.registry import RunningRegistry, StartRegistry

pytestmark = pytest.mark.slow

DRAIN = 3.0
MIB = 1 << 20
STALLED = 4
TRICKLING = 2
PIECE = 64 << 10
PIECE_EVERY = 0.1
REFUSED_WITHIN = DRAIN / 2
"""Seconds from the signal to the first refused connection: at once, which a loaded machine may
stretch to a second or so, and long before the drain timeout (a listener kept open through the
drain would refuse nothing before it)."""
ANSWERED_WITHIN = 2.0
"""A connection the kernel took just before the listening socket closed gets an answer or is
closed within this; it must never hang."""


@dataclass
class Upload:
    """An upload whose first MiB the registry acknowledged, then a PATCH that is cut by the stop."""

    name: str
    location: str
    data: bytes
    sent: int = 0  # bytes of the interrupted PATCH's body sent, after the first MiB
    answer: bytes = b""  # what the server sent on the PATCH's connection
    closed_after: float | None = None  # seconds from the signal to the connection's end

    @classmethod
    def begin(cls, client: httpx.Client, name: str, size: int) -> Upload:
        data = os.urandom(size)
        location = start_upload(client, name)
        response = client.patch(
            location,
            content=data[:MIB],
            headers={"Content-Range": f"0-{MIB - 1}", "Content-Type": "application/octet-stream"},
        )
        assert expect(response, 202).headers["Range"] == f"0-{MIB - 1}"
        return cls(name, response.headers["Location"], data)

    def open_patch(self, port: int, length: int) -> socket.socket:
        """A PATCH continuing at the first MiB and declaring ``length`` bytes; no body sent yet."""
        return self._open(port, "PATCH", self._target(), length, f"Content-Range: {MIB}-{MIB + length - 1}")

    def open_finishing_put(self, port: int) -> socket.socket:
        """The PUT that would finish the upload with the rest of its bytes; no body sent yet."""
        target = self._target(f"digest={digest_of(self.data)}")
        return self._open(port, "PUT", target, len(self.data) - MIB)

    def _target(self, *query: str) -> str:
        url = urlsplit(self.location)
        parameters = "&".join([url.query, *query] if url.query else query)
        return url.path + (f"?{parameters}" if parameters else "")

    @staticmethod
    def _open(port: int, method: str, target: str, length: int, *headers: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}"]
        head += ["Content-Type: application/octet-stream", *headers]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        return sock

    def send(self, sock: socket.socket, count: int) -> None:
        sock.sendall(self.data[MIB + self.sent : MIB + self.sent + count])
        self.sent += count


@dataclass
class Stop:
    """What the prober saw from the signal on."""

    signalled: float = field(default_factory=time.monotonic)
    first_refused: float | None = None
    connected_before_refusal: int = 0
    left_hanging: int = 0  # of those, connections that got neither an answer nor closed
    connected_after_refusal: int = 0
    refusals: int = 0
    exited_after: float | None = None


def _trickle(upload: Upload, sock: socket.socket, stop: Stop, until: int | None) -> None:
    """Send a piece every PIECE_EVERY seconds, ``until`` bytes or until the server closes the
    connection (``closed_after``)."""
    sock.settimeout(30)
    try:
        while until is None or upload.sent < until:
            upload.send(sock, PIECE)
            time.sleep(PIECE_EVERY)
        upload.answer = sock.recv(65536)
    except OSError:
        upload.closed_after = time.monotonic() - stop.signalled


def _probe(registry: RunningRegistry, stop: Stop) -> None:
    """Connect every 10 ms until the server process has exited."""
    assert registry.process is not None
    while registry.process.running():
        try:
            sock = socket.create_connection(("127.0.0.1", registry.port), timeout=1)
        except (ConnectionRefusedError, ConnectionResetError):  # reset: the SYN met the closing socket
            stop.refusals += 1
            if stop.first_refused is None:
                stop.first_refused = time.monotonic() - stop.signalled
        else:
            if stop.first_refused is None:
                stop.connected_before_refusal += 1
                stop.left_hanging += not _answered_or_closed(sock)
            else:
                stop.connected_after_refusal += 1
                sock.close()
        time.sleep(0.01)
    stop.exited_after = time.monotonic() - stop.signalled


def _answered_or_closed(sock: socket.socket) -> bool:
    """Whether a request on ``sock`` gets an answer or a closed connection, rather than silence."""
    sock.settimeout(ANSWERED_WITHIN)
    try:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
        sock.recv(65536)
    except TimeoutError:
        return False
    except OSError:
        pass  # reset: as good as refused
    finally:
        sock.close()
    return True


def _wait_closed(upload: Upload, sock: socket.socket, stop: Stop) -> None:
    sock.settimeout(DRAIN + EXIT_GRACE + 10)
    try:
        upload.answer = sock.recv(65536)
    except TimeoutError:
        return
    except OSError:
        pass
    upload.closed_after = time.monotonic() - stop.signalled


def _resume(client: httpx.Client, upload: Upload) -> int:
    """Continue ``upload`` from the size its status reports and finish it; that size."""
    status = expect(client.get(upload.location), 204)
    size = int(status.headers["Range"].split("-")[1]) + 1
    assert MIB <= size <= MIB + upload.sent, (size, upload.sent)
    if size < len(upload.data):
        response = client.patch(
            upload.location,
            content=upload.data[size:],
            headers={
                "Content-Range": f"{size}-{len(upload.data) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert expect(response, 202).headers["Range"] == f"0-{len(upload.data) - 1}"
    digest = digest_of(upload.data)
    expect(client.put(upload.location, params={"digest": digest}), 201)
    assert expect(client.get(f"/v2/{upload.name}/blobs/{digest}"), 200).content == upload.data
    return size


@pytest.mark.parametrize(
    ("workers", "signal_group"),
    [(1, False), (3, False), (3, True)],
    ids=["one-process", "workers-supervisor-signalled", "workers-group-signalled"],
)
def test_sigterm_refuses_new_connections_drains_and_uploads_resume(
    start_registry: StartRegistry, workers: int, signal_group: bool
) -> None:
    """``workers-supervisor-signalled`` is ``docker stop``: only the supervisor gets the signal;
    ``workers-group-signalled`` is systemd: every process does."""
    registry = start_registry({"http": {"draintimeout": f"{DRAIN:g}s"}}, workers=workers)
    assert registry.process is not None
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        stalled = [Upload.begin(client, f"stop/stalled{i}", 9 * MIB) for i in range(STALLED)]
        trickling = [Upload.begin(client, f"stop/trickling{i}", 16 * MIB) for i in range(TRICKLING)]
        finishing = Upload.begin(client, "stop/finishing", 2 * MIB)
    stalled_socks = []
    for i, upload in enumerate(stalled):  # half of them finishing PUTs, which stall alike
        sock = (
            upload.open_patch(registry.port, 8 * MIB) if i % 2 else upload.open_finishing_put(registry.port)
        )
        upload.send(sock, MIB)
        stalled_socks.append(sock)
    stop = Stop()
    threads = [
        threading.Thread(target=_trickle, args=(u, u.open_patch(registry.port, 15 * MIB), stop, None))
        for u in trickling
    ]
    # Its last piece goes out about 1.4 s after the signal, well within the drain timeout.
    threads.append(
        threading.Thread(
            target=_trickle, args=(finishing, finishing.open_patch(registry.port, MIB), stop, MIB)
        )
    )
    for thread in threads:
        thread.start()
    time.sleep(0.2)

    if signal_group:
        registry.process.signal_group(signal.SIGTERM)
    else:
        os.kill(registry.process.pid, signal.SIGTERM)
    stop.signalled = time.monotonic()
    prober = threading.Thread(target=_probe, args=(registry, stop))
    prober.start()
    closers = [
        threading.Thread(target=_wait_closed, args=(upload, sock, stop))
        for upload, sock in zip(stalled, stalled_socks, strict=True)
    ]
    for closer in closers:
        closer.start()
    prober.join(timeout=DRAIN + EXIT_GRACE + 30)
    for thread in [*threads, *closers]:
        thread.join(timeout=30)
    leftover = process_group(registry.process.pid)
    log = registry.log()
    registry.stop()
    print(
        f"{workers} workers: first refusal {stop.first_refused}s after the signal, "
        f"{stop.connected_before_refusal} connections taken before it, {stop.refusals} refused, "
        f"exit after {stop.exited_after}s (drain timeout {DRAIN}s)"
    )

    assert stop.first_refused is not None, stop
    assert stop.first_refused < REFUSED_WITHIN, stop
    assert stop.connected_after_refusal == 0, stop
    assert stop.left_hanging == 0, stop
    assert stop.exited_after is not None, "the server did not exit"
    # It waited for the stalled requests until the drain timeout, and not much longer.
    assert DRAIN - 0.5 <= stop.exited_after <= DRAIN + EXIT_GRACE, stop.exited_after
    assert leftover == [], "workers outlived the server"
    assert finishing.answer.startswith(b"HTTP/1.1 202"), finishing.answer
    assert f"range: 0-{2 * MIB - 1}".encode() in finishing.answer.lower(), finishing.answer
    for upload in stalled:
        assert upload.closed_after is not None, "a stalled connection outlived the server"
        assert upload.closed_after >= DRAIN - 0.5, upload.closed_after
    for upload in trickling:  # taken until the drain timeout, then cut
        assert upload.closed_after is not None, "a trickling upload outlived the server"
        assert upload.closed_after >= DRAIN - 0.5, upload.closed_after
    assert "Traceback" not in log, log[-4000:]
    # The requests ended when their connections were closed at the drain timeout: no process
    # needed its last resort.
    assert "with requests still in flight" in log
    assert "exiting without them" not in log
    assert "killing" not in log

    registry.start()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        for upload in [*stalled, *trickling]:
            _resume(client, upload)
        assert _resume(client, finishing) == 2 * MIB


def test_a_worker_that_cannot_stop_is_killed_at_the_deadline(start_registry: StartRegistry) -> None:
    """A worker that does nothing at all (here SIGSTOPped) cannot hold the stop beyond its bound."""
    drain = 1.0
    registry = start_registry({"http": {"draintimeout": f"{drain:g}s"}}, workers=2)
    assert registry.process is not None
    leader = registry.process.pid
    deadline = time.monotonic() + 30
    while registry.log().count("Application startup complete") < 2:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    workers = [pid for pid in process_group(leader) if _status(pid)[1] == leader]
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGSTOP)
    while _status(workers[0])[0] != "T":
        time.sleep(0.01)
    signalled = time.monotonic()
    os.kill(leader, signal.SIGTERM)
    code = registry.process.process.wait(timeout=longest_stop(drain) + 30)
    exited_after = time.monotonic() - signalled
    leftover = process_group(leader)
    log = registry.log()
    registry.stop()
    print(f"a stopped worker: the server exited {exited_after:.2f}s after the signal")
    assert longest_stop(drain) - 0.5 <= exited_after <= longest_stop(drain) + 2, (exited_after, code, log)
    assert leftover == []
    assert "killing 1 workers still running after the drain timeout" in log


def _status(pid: int) -> tuple[str, int]:
    """A process's state letter (``T``: stopped) and its parent's pid."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])
