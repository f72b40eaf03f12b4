"""uvicorn's server with a bounded stop: what a worker does on SIGTERM or SIGINT.

At the signal the listening socket is closed, so new connections are refused, and uvicorn
lets the requests in flight finish. Left alone it would wait for them forever: a client that
stalls in the middle of an upload would hold a restart. Here the wait is bounded:

- after ``drain_timeout`` the connections still open are closed; their requests see the
  client go away, as when a client disconnects, and an interrupted upload keeps what was
  written, resumable from the ``Range`` its status reports;
- ``EXIT_GRACE`` later the process ends whatever its requests are doing (a request blocked on
  storage): storage holds nothing half-written that a later request could see, as after
  ``kill -9``.

uvicorn's server also wakes ten times a second to look for the signal and, every tenth time, to
renew the ``date`` of its answers. Here the signal wakes the server itself, and the date is renewed
as each second of the clock begins: one wake-up a second for an idle worker, not ten. That tick
also gives freed memory back once the worker falls idle after a burst (``registry/heaptrim.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from types import FrameType

import uvicorn

from offload import to_thread

from .heaptrim import IdleTrim
from .supervisor import EXIT_GRACE

log = logging.getLogger("registry")

DATE_LAG = 0.001
"""Seconds after the clock's second begins that the date header is renewed: a timer that fires a
little early must still see the new second."""


class DrainingServer(uvicorn.Server):
    """Serves until SIGTERM or SIGINT, then stops within ``drain_timeout`` plus EXIT_GRACE."""

    def __init__(self, config: uvicorn.Config, drain_timeout: float) -> None:
        super().__init__(config)
        self._drain_timeout = drain_timeout
        self._signalled_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exiting = asyncio.Event()  # bound to the loop that first waits for it

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    async def main_loop(self) -> None:
        heap = IdleTrim()
        # uvicorn's ``on_tick`` with a count that is a multiple of ten renews the date header.
        while not await self.on_tick(0):
            if heap.due(self.server_state.total_requests, bool(self.server_state.tasks)):
                await to_thread(heap.trim)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exiting.wait(), 1.0 - time.time() % 1.0 + DATE_LAG)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()
            # A thread, not the event loop: it must fire even when the loop is stuck.
            threading.Thread(target=self._exit_when_overdue, name="exit-deadline", daemon=True).start()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._stop_accepting)
        super().handle_exit(sig, frame)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._exiting.set)

    def _stop_accepting(self) -> None:
        """Close the listening sockets in the signal's own turn of the loop, before uvicorn's
        shutdown does: until every process has closed its copy, new connections are queued, and
        reset after."""
        for server in getattr(self, "servers", []):  # none before start-up has finished
            server.close()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        closing = asyncio.create_task(self._close_connections_after_drain())
        try:
            await super().shutdown(sockets)
        finally:
            closing.cancel()

    def _elapsed(self) -> float:
        return time.monotonic() - (self._signalled_at or time.monotonic())

    async def _close_connections_after_drain(self) -> None:
        await asyncio.sleep(max(0.0, self._drain_timeout - self._elapsed()))
        connections = list(self.server_state.connections)
        if connections:
            log.warning(
                "drain timeout (%gs): closing %d connections with requests still in flight",
                self._drain_timeout,
                len(connections),
            )
        for connection in connections:
            connection.transport.close()

    def _exit_when_overdue(self) -> None:
        time.sleep(self._drain_timeout + EXIT_GRACE)
        log.error(
            "still stopping %.1fs after the signal (%d requests running): exiting without them",
            self._elapsed(),
            len(self.server_state.tasks),
        )
        os._exit(1)
