"""Work done in a forked child of the command, its result handed back as bytes through a pipe.

A scan of a filesystem spends most of its time in the interpreter (names, digests, records),
which threads cannot share; a child forked from the process after its setup (imports, the record
of references and sizes) starts with all of it at no cost, and only what it found comes back.
A child whose work fails, or that dies, fails the parent's wait: a result is never taken short.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from offload import to_thread
from storage_drivers import StorageError

_DONE = b"\0"
_FAILED = b"\1"


@dataclass
class Child:
    pid: int
    pipe: int
    """The read end of the pipe its result comes through; -1 once closed."""
    reaped: bool = False


def start(work: Callable[[], bytes]) -> Child:
    """``work()`` in a forked child, which exits once it has written its result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into the caller's frames, whatever happens
        status = 1
        try:
            os.close(read_end)
            try:
                result = _DONE + work()
            except BaseException as exc:  # reported to the parent, which raises it
                result = _FAILED + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
            with open(write_end, "wb") as pipe:
                pipe.write(result)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return Child(pid, read_end)


async def result(child: Child) -> bytes:
    """What ``child`` handed back, once it has exited; raises ``StorageError`` when its work
    failed or it did not exit cleanly."""
    try:
        data = await to_thread(_read_all, child.pipe)
    finally:
        _close(child)
    status = await to_thread(_reap, child)
    if status != 0 or not data.startswith(_DONE):
        detail = data[1:].decode("utf-8", "replace") if data.startswith(_FAILED) else f"wait status {status}"
        raise StorageError("/", f"a forked share of the work failed: {detail}")
    return data[1:]


def stop(child: Child) -> None:
    """End and reap ``child`` unless it was reaped (the parent gave up on its result)."""
    _close(child)
    if child.reaped:
        return
    os.kill(child.pid, signal.SIGKILL)
    os.waitpid(child.pid, 0)  # at once: killed
    child.reaped = True


def _reap(child: Child) -> int:
    """The child's wait status, once it has exited; marked reaped here, in the thread, so that a
    caller cancelled meanwhile never signals a process id that may have been given out again."""
    _, status = os.waitpid(child.pid, 0)
    child.reaped = True
    return status


def _close(child: Child) -> None:
    if child.pipe >= 0:
        os.close(child.pipe)
        child.pipe = -1


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
