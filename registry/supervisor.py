"""Running the registry in several worker processes that share one listening socket.

The supervisor binds the socket, forks the workers and replaces any that dies. On
SIGTERM or SIGINT it stops accepting at once, passes the signal on and gives the workers
the drain timeout to finish their requests (``registry/draining.py``); it imports nothing of the application
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
import stat
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("registry")

RESTART_DELAY = 1.0
"""Pause before replacing a worker that died, so one failing at start-up cannot spin."""
EXIT_GRACE = 5.0
"""After the drain timeout: time for the requests whose connections were closed to end and for
the workers to exit. A worker ends itself then; the supervisor kills what is left a second
later (``longest_stop``)."""
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
HANDLED_SIGNALS = STOP_SIGNALS | {signal.SIGCHLD}


def longest_stop(drain_timeout: float) -> float:
    """Seconds from SIGTERM until every process of the registry has exited, at the most; the
    stop timeouts of service managers (systemd, containers) must allow this."""
    return drain_timeout + EXIT_GRACE + 1.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


SOCKET_MODE = 0o660
"""A unix socket's file: the registry's user and group connect (the proxy's user joins the group)."""


def bind_unix(path: str) -> socket.socket:
    """Listen on a unix socket at ``path``, replacing the socket file a previous run left there
    (any other kind of file there is an error, not replaced)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, SOCKET_MODE)  # not left to the umask: the proxy's group needs to connect
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates an arena of its own and keeps what they free; with
    upload threads that is tens of MB per worker. Two arenas, and large buffers mapped and
    returned, keep a worker's memory flat. The request bodies' quarter-megabyte pieces come and
    go at the top of the heap: trimming it only past 8 MiB spares a brk call for each of them; a
    worker that falls idle after a burst gives that back (``registry/heaptrim.py``)."""
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(-8, 2)  # M_ARENA_MAX
        mallopt(-3, 512 << 10)  # M_MMAP_THRESHOLD
        mallopt(-1, 8 << 20)  # M_TRIM_THRESHOLD


def supervise(
    workers: int, run_worker: Callable[[socket.socket], None], sock: socket.socket, drain_timeout: float
) -> None:
    """Fork ``workers`` processes running ``run_worker(sock)``, replacing any that dies, until
    SIGTERM or SIGINT; return once all have stopped, within ``drain_timeout`` plus a few seconds."""
    Supervisor(workers, run_worker, sock, drain_timeout).run()


class Supervisor:
    """Waits for signals, not in ``waitpid``: a stop and its deadline take effect at the signal,
    whatever the workers are doing. The signals it handles are blocked and taken with
    ``sigtimedwait``, so none can arrive between a check and the wait."""

    def __init__(
        self,
        workers: int,
        run_worker: Callable[[socket.socket], None],
        sock: socket.socket,
        drain_timeout: float,
    ) -> None:
        self._workers = workers
        self._run_worker = run_worker
        self._sock = sock
        self._drain_timeout = drain_timeout
        self._children: set[int] = set()
        self._restarts: list[float] = []  # when to start a worker in place of one that died
        self._stopping = False
        self._kill_at: float | None = None

    def run(self) -> None:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            for _ in range(self._workers):
                self._start(mask)
            while True:
                self._reap()
                self._act_on_time(mask)
                if not self._children and not self._restarts:
                    return
                self._wait()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _start(self, mask: Iterable[int]) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the worker's server takes its signals
            code = 0
            try:
                limit_malloc_arenas()
                self._run_worker(self._sock)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)  # never return into the supervisor's code
        self._children.add(pid)

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                return
            if pid == 0:
                return
            self._children.discard(pid)
            if not self._stopping:
                code = os.waitstatus_to_exitcode(status)
                log.error("worker %d exited (status %d); starting another", pid, code)
                self._restarts.append(time.monotonic() + RESTART_DELAY)

    def _act_on_time(self, mask: Iterable[int]) -> None:
        now = time.monotonic()
        while self._restarts and self._restarts[0] <= now:
            self._restarts.pop(0)
            self._start(mask)
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            log.error("killing %d workers still running after the drain timeout", len(self._children))
            for pid in self._children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _wait(self) -> None:
        """Until a signal arrives (a worker exited, or a stop) or the next restart or kill is due."""
        due = [*self._restarts, *([self._kill_at] if self._kill_at is not None else [])]
        if due:
            received = signal.sigtimedwait(HANDLED_SIGNALS, max(0.0, min(due) - time.monotonic()))
        else:
            received = signal.sigwaitinfo(HANDLED_SIGNALS)
        if received is not None and received.si_signo in STOP_SIGNALS:
            self._stop()

    def _stop(self) -> None:
        """Stop accepting at once: with the supervisor's copy of the listening socket closed, the
        socket closes for good as each worker closes its own, and new connections are refused
        rather than queued for no one. Then the workers drain, within one deadline from now."""
        if self._stopping:
            return
        self._stopping = True
        self._kill_at = time.monotonic() + longest_stop(self._drain_timeout)
        self._restarts.clear()
        self._sock.close()
        log.info(
            "stopping: %d workers finish their requests (drain timeout %gs)",
            len(self._children),
            self._drain_timeout,
        )
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
