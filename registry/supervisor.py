"""Running the registry in several worker processes that share one listening socket.

The supervisor binds the socket, forks the workers and replaces any that dies; on
SIGTERM or SIGINT it stops them gracefully. It imports nothing of the application
or the web server, so it stays a small process; each worker imports and builds
the application itself (a worker is a whole registry: nothing is shared but the
socket and the storage).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("registry")

RESTART_DELAY = 1.0
"""Pause before replacing a worker that died, so one failing at start-up cannot spin."""
STOP_TIMEOUT = 30.0
"""How long workers get to finish their requests after SIGTERM before they are killed."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates an arena of its own and keeps what they free; with
    upload threads that is tens of MB per worker. Two arenas, and large buffers mapped and
    returned, keep a worker's memory flat. The request bodies' quarter-megabyte pieces come and
    go at the top of the heap: trimming it only past 8 MiB spares a brk call for each of them."""
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(-8, 2)  # M_ARENA_MAX
        mallopt(-3, 512 << 10)  # M_MMAP_THRESHOLD
        mallopt(-1, 8 << 20)  # M_TRIM_THRESHOLD


def supervise(workers: int, run_worker: Callable[[socket.socket], None], sock: socket.socket) -> None:
    """Fork ``workers`` processes running ``run_worker(sock)``; return once all have stopped."""
    children: set[int] = set()
    stopping = False

    def start() -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                limit_malloc_arenas()
                run_worker(sock)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)  # never return into the supervisor's code
        children.add(pid)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        start()
    deadline: float | None = None
    while children:
        if stopping and deadline is None:
            deadline = time.monotonic() + STOP_TIMEOUT
        try:
            pid, status = os.waitpid(-1, os.WNOHANG if deadline else 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == 0:  # stopping, none exited yet
            if deadline is not None and time.monotonic() > deadline:
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
            time.sleep(0.1)
            continue
        children.discard(pid)
        if not stopping:
            log.error(
                "worker %d exited (status %d); starting another", pid, os.waitstatus_to_exitcode(status)
            )
            time.sleep(RESTART_DELAY)
            if not stopping:
                start()
