"""Which worker process of a server holds a given TCP connection (Linux /proc, IPv4 loopback)."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.waiting import until

PROC = Path("/proc")


def _hex_endpoint(port: int) -> str:
    return f"0100007F:{port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian)


def _socket_inode(server_port: int, client_port: int) -> str | None:
    local, remote = _hex_endpoint(server_port), _hex_endpoint(client_port)
    for line in (PROC / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9]
    return None


def process_group(leader: int) -> list[int]:
    """Every process in the group ``leader`` started (the server and its workers)."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == leader:  # the process group id
            members.append(int(entry.name))
    return members


def _traced_by(tracer: int, pids: list[str]) -> bool:
    """Whether ``tracer`` traces every thread of ``pids`` (those still running): strace has
    attached, and writes what they do from then on."""
    for pid in pids:
        with contextlib.suppress(OSError):  # a process or thread that ended meanwhile
            for task in (PROC / pid / "task").iterdir():
                with contextlib.suppress(OSError):
                    status = (task / "status").read_text()
                    if f"\nTracerPid:\t{tracer}\n" not in status:
                        return False
    return True


@contextlib.contextmanager
def traced(leader: int, syscalls: str, out: Path) -> Iterator[None]:
    """strace of ``syscalls`` (strace's ``trace=`` list) in the group ``leader`` started, written
    to ``out`` for the duration of the block."""
    pids = [str(member) for member in process_group(leader)]
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", f"trace={syscalls}", "-o", str(out),
         *(argument for member in pids for argument in ("-p", member))],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        until(
            lambda: tracer.poll() is not None or _traced_by(tracer.pid, pids),
            what="for strace to attach",
        )
        assert tracer.poll() is None, tracer.stderr.read() if tracer.stderr else tracer.returncode
        yield
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)


def serving_process(connection: http.client.HTTPConnection, server_port: int, leader: int) -> int | None:
    """The pid of the process in ``leader``'s group holding the server side of ``connection``."""
    assert connection.sock is not None
    inode = _socket_inode(server_port, connection.sock.getsockname()[1])
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in process_group(leader):
        fd_dir = PROC / str(pid) / "fd"
        try:
            if any(os.readlink(fd_dir / fd) == wanted for fd in os.listdir(fd_dir)):
                return pid
        except OSError:
            continue
    return None
