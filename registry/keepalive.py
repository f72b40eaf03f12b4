"""One keep-alive timer per idle spell, where uvicorn makes one per request.

uvicorn closes a keep-alive connection that stays idle ``timeout_keep_alive`` seconds after its
last response: it starts a timer as each response completes and cancels it when the next request's
bytes arrive. Creating and cancelling a timer costs about 1.5 µs of CPU, on every request of a busy
connection, and the cancelling happens before the request is answered.

Here a response's completion notes the time, and starts a timer only when none is pending; the
next request's bytes just clear the note. When the timer fires, a connection idle long enough is
closed, one that went idle again later gets a timer for the rest of its spell, and a busy one gets
none: its next response starts one. A connection that keeps answering requests thus has one timer
per ``timeout_keep_alive`` seconds, and the idle ones close when uvicorn's would.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class IdleSpellProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with one keep-alive timer per idle spell."""

    _idle_since: float | None = None
    """The loop's time when the connection's last response completed; None while a request is
    arriving or being answered."""
    _idle_timer: asyncio.TimerHandle | None = None

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn's hook for "the connection is no longer idle": bytes arrived or it was closed.
        self._idle_since = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # uvicorn's, but for the timer: it would start one for every response.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # requests read while this one was answered: start the next
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = now = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(now + self.timeout_keep_alive, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._idle_since is None or self.transport.is_closing():
            return  # busy: its next response starts a timer
        due = self._idle_since + self.timeout_keep_alive
        if self.loop.time() >= due:
            self.timeout_keep_alive_handler()
        else:
            self._idle_timer = self.loop.call_at(due, self._idle_check)
