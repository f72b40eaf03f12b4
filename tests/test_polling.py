"""After an answer that leaves the worker idle, the event loop polls for a moment; polls that find
nothing make the following answers skip polling, more and more of them, and one that finds a
request resets that; the registry's protocol answers as before, on both event loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop
from starlette.types import Receive, Scope, Send

from registry.polling import MOST_SKIPPED, WINDOW, Poller, poller
from tests.support.loopserver import LoopServer
from tests.support.waiting import until

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
REQUEST = b"GET / HTTP/1.1\r\nHost: registry\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until a poll that finds nothing has surely ended."""
    loop.run_until_complete(asyncio.sleep(WINDOW * 50))


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
def test_polls_that_find_nothing_back_off(loop_kind: str) -> None:
    loop = LOOPS[loop_kind]()
    try:
        polls = Poller(loop)
        started = []
        for _ in range(40):
            polls.answered()
            started.append(polls.polling)
            settle(loop)
            assert not polls.polling  # an idle worker stops polling
        # Polls after answers 1, 3, 6, 11, 20 and 37: each miss doubles the answers skipped.
        assert [number for number, polled in enumerate(started, 1) if polled] == [1, 3, 6, 11, 20, 37]
        assert polls.backoff == 32
    finally:
        loop.close()


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
def test_a_poll_that_finds_a_request_resets_the_back_off(loop_kind: str) -> None:
    loop = LOOPS[loop_kind]()
    try:
        polls = Poller(loop)
        polls.answered()
        settle(loop)
        polls.answered()  # skipped
        polls.answered()
        assert polls.polling
        polls.arrived()
        settle(loop)
        assert (polls.polling, polls.backoff) == (False, 0)
        polls.answered()
        assert polls.polling  # no answer skipped any more
        settle(loop)
    finally:
        loop.close()


def test_the_back_off_is_bounded() -> None:
    loop = asyncio.new_event_loop()
    try:
        polls = Poller(loop)
        for _ in range(4 * MOST_SKIPPED):
            polls.answered()
            if polls.polling:
                settle(loop)
        assert polls.backoff == MOST_SKIPPED
    finally:
        loop.close()


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
def test_answers_are_unchanged_and_an_idle_worker_stops_polling(loop_kind: str) -> None:
    server = LoopServer(LOOPS[loop_kind](), app)
    try:
        with server.connect() as sock:
            for count in (1, 1, 3, 1):  # pipelined requests among them
                sock.sendall(REQUEST * count)
                expected = ANSWER * count
                answer = b""
                while len(answer) < len(expected):
                    piece = sock.recv(65536)
                    assert piece
                    answer += piece
                assert answer == expected
                time.sleep(0.01)
            # The server's thread ends its poll WINDOW after the last answer, once it runs.
            until(
                lambda: not poller(server.state, server.loop).polling, what="for the worker to stop polling"
            )
    finally:
        server.close()
