"""Hanging a process at an exact point of its work, which signalling it (or watching for a state
and then signalling) can only hit by chance: a TCP relay that turns into a hung server at a
chosen request, and a command prefix under which unlinking a chosen file never returns."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

_CHUNK = 1 << 16
HELD_FOR = "3600s"
"""How long ``held`` keeps the call waiting: longer than any test waits."""


def held(path: Path) -> list[str]:
    """A command prefix (strace, following every thread and child) under which deleting ``path``
    (an absolute path, as the process names it) hangs: a run deleting a list of files cannot end
    before it is killed, whatever its speed. Calls on other files go on as usual."""
    return [
        "strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-P", str(path),
        "-e", "trace=unlink,unlinkat", "-e", f"inject=unlink,unlinkat:delay_enter={HELD_FOR}",
    ]  # fmt: skip


class StallingRelay:
    """Relays connections on a port of 127.0.0.1 to ``upstream`` until a request line (the first
    line of a chunk a client sends) first satisfies ``trigger``, which is asked about one request
    at a time (it may count them, or look at the state their server is in). From then on nothing
    more reaches ``upstream``, that request included: to its clients a server that takes
    connections and answers nothing. ``resume`` passes on what was held back and relays again.
    While ``upstream`` refuses connections, so does the relay (it closes them at once)."""

    def __init__(self, upstream: tuple[str, int], trigger: Callable[[bytes], bool]) -> None:
        self.upstream = upstream
        self.trigger = trigger
        self.stalled = threading.Event()
        self._matching = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self.answered = 0
        """Bytes relayed from ``upstream`` to the clients."""
        self._counting = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        """Stop relaying; what was held back is dropped, never passed on."""
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            sock.close()
        self._flowing.set()

    def __enter__(self) -> StallingRelay:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _match(self, request_line: bytes) -> None:
        with self._matching:
            if self.stalled.is_set() or not self.trigger(request_line):
                return
            self._flowing.clear()
            self.stalled.set()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while chunk := source.recv(_CHUNK):
                if requests and not self.stalled.is_set():
                    self._match(chunk.split(b"\r\n", 1)[0])
                if requests:
                    self._flowing.wait()
                if self._closed:
                    return
                sink.sendall(chunk)
                if not requests:
                    with self._counting:
                        self.answered += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
