"""Keep-alive connections close after ``timeout_keep_alive`` idle seconds, counted from their last
response, with one timer per idle spell: the registry's own protocol on a real socket, on both
event loops."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
import uvloop
from starlette.types import Receive, Scope, Send

from registry.coalescing import CoalescingHTTPProtocol
from tests.support.loopserver import LoopServer

TIMEOUT = 4
"""The keep-alive timeout the server is given, in seconds: the idleness test's requests come 0.7
of it (2.8 s) before a timer would close the connection, a margin a loaded machine's pauses do
not reach."""
PAUSE = 0.3
"""Between the idleness test's requests, as a fraction of ``TIMEOUT``: four of them add up to more
than one timeout, each far from one."""
REQUEST = b"GET / HTTP/1.1\r\nHost: registry\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Server(LoopServer):
    """The registry's protocol serving ``app`` with a keep-alive timeout of ``TIMEOUT``, noting
    for each idle timer that fired whether it started another."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        checks: list[bool] = []

        class Counted(CoalescingHTTPProtocol):
            def _idle_check(self) -> None:
                super()._idle_check()
                checks.append(self._idle_timer is not None)

        self.checks = checks
        super().__init__(loop, app, Counted, timeout_keep_alive=TIMEOUT)


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
        for _ in range(4):
            # The timer started by the first answer fires while later answers' idle time is not
            # up; the connection must still be open at the last, 1.2 timeouts after the first.
            time.sleep(TIMEOUT * PAUSE)
            _ask(sock)
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
