"""Keep-alive connections close after ``timeout_keep_alive`` idle seconds, counted from their last
response, with one timer per idle spell: the registry's own protocol on a real socket, on both
event loops."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from registry.coalescing import CoalescingHTTPProtocol

TIMEOUT = 2
"""The keep-alive timeout the server is given, in seconds."""
REQUEST = b"GET / HTTP/1.1\r\nHost: registry\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Server:
    """The protocol serving ``app`` on a loop in a thread, counting the timers it starts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timers = 0
        config = uvicorn.Config(app, lifespan="off", log_config=None, timeout_keep_alive=TIMEOUT)
        state = ServerState()
        server = self

        class Counted(CoalescingHTTPProtocol):
            def _idle_check(self) -> None:
                super()._idle_check()
                server.checks.append(self._idle_timer is not None)

        self.checks: list[bool] = []
        """For each timer that fired: whether it started another."""
        self.thread = threading.Thread(target=loop.run_forever, daemon=True)
        self.thread.start()

        def protocol() -> CoalescingHTTPProtocol:
            return Counted(config=config, server_state=state, app_state={}, _loop=loop)

        started = asyncio.run_coroutine_threadsafe(loop.create_server(protocol, "127.0.0.1", 0), loop)
        self.server = started.result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    served = Server(LOOPS[request.param]())
    try:
        yield served
    finally:
        served.close()


def _ask(sock: socket.socket, count: int = 1) -> None:
    sock.sendall(REQUEST * count)
    expected = ANSWER * count
    received = b""
    while len(received) < len(expected):
        piece = sock.recv(4096)
        assert piece, "the server closed the connection"
        received += piece
    assert received == expected


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(TIMEOUT * 10)
    return sock.recv(1) == b""


def test_an_idle_connection_is_closed(server: Server) -> None:
    with server.connect() as sock:
        _ask(sock)
        assert _closed_by_server(sock)


def test_idleness_counts_from_the_last_response(server: Server) -> None:
    with server.connect() as sock:
        _ask(sock)
        time.sleep(TIMEOUT * 0.6)
        _ask(sock)  # the timer started by the first answer fires before this one's idle time is up
        time.sleep(TIMEOUT * 0.7)
        _ask(sock)  # so the connection must still be open here, 1.3 timeouts after the first
        assert _closed_by_server(sock)
    assert True in server.checks, "a timer that found a later idle spell should start another"


def test_a_busy_connection_stays_open_and_starts_few_timers(server: Server) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        requests = 0
        while time.monotonic() - started < TIMEOUT * 2.5:
            _ask(sock)
            requests += 1
            time.sleep(0.01)
        assert _closed_by_server(sock)
    # One per timeout while busy, and the last one that closed it: not one per request.
    assert requests > 50
    assert len(server.checks) <= 5


def test_pipelined_requests_are_all_answered(server: Server) -> None:
    with server.connect() as sock:
        _ask(sock, 3)
        _ask(sock)
        assert _closed_by_server(sock)
