"""A worker keeps polling for a moment after an answer, so that a client's next request finds it
running instead of asleep.

After each answer a worker with nothing else to do would sleep in ``epoll_wait``. On a virtual
machine an idle core halts, and waking it for the next request costs some 20 µs: at
concurrency 1 that is a third of a request's round trip. Go's scheduler avoids it by polling
for work before its threads park; here, after an answer that leaves the worker without
requests, the event loop keeps polling (a callback that schedules itself again, so the loop
polls with a zero timeout) until bytes arrive or ``WINDOW`` passes.

A poll that ends with nothing makes the worker skip polling after the next 1, 2, 4, ... up to
``MOST_SKIPPED`` answers; one that finds a request resets that. A client that pauses between
requests (docker, a browser) thus costs a poll now and then, and an idle worker polls once
after its last answer and sleeps.
"""

from __future__ import annotations

import asyncio
import time
import weakref

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

WINDOW = 60e-6
"""Seconds a worker polls after an answer: a client on the same machine answers within it."""
MOST_SKIPPED = 256
"""Answers followed by no poll, at most, after polls that found nothing."""


class Poller:
    """The polling of one event loop (one worker): at most one poll runs at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._until = 0.0
        self.polling = False
        self._arrived = False
        self._skip = 0
        self.backoff = 0  # answers skipped after the last poll that found nothing

    def arrived(self) -> None:
        """Bytes of a request arrived."""
        self._arrived = True

    def answered(self) -> None:
        """An answer completed and the worker has no other request."""
        self._arrived = False
        self._until = time.monotonic() + WINDOW
        if self.polling:
            return
        if self._skip:
            self._skip -= 1
            return
        self.polling = True
        self._loop.call_soon(self._poll)

    def _poll(self) -> None:
        if self._arrived:
            self.polling = False
            self.backoff = 0
        elif time.monotonic() >= self._until:
            self.polling = False
            self.backoff = min(MOST_SKIPPED, max(1, 2 * self.backoff))
            self._skip = self.backoff
        else:
            self._loop.call_soon(self._poll)


_pollers: weakref.WeakKeyDictionary[ServerState, Poller] = weakref.WeakKeyDictionary()


def poller(server: ServerState, loop: asyncio.AbstractEventLoop) -> Poller:
    """The poller of a worker's server, whose connections ``loop`` serves."""
    found = _pollers.get(server)
    if found is None:
        found = _pollers[server] = Poller(loop)
    return found


class PollingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, polling after an answer that leaves the worker idle."""

    def data_received(self, data: bytes) -> None:
        poller(self.server_state, self.loop).arrived()
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The answering request's task is still among the worker's tasks.
        if not self.transport.is_closing() and not self.pipeline and len(self.tasks) <= 1:
            poller(self.server_state, self.loop).answered()
