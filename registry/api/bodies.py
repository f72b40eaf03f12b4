"""A request's body as the upload path reads it (``storage.pump.Body``)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from ..rawbody import RawBody


class RequestBody:
    """The body's ASGI messages and then, where the connection offers a ``RawBody``, the rest of
    it read from the socket straight into the caller's memory."""

    def __init__(self, receive: Receive, raw: RawBody | None) -> None:
        self._receive = receive
        self._raw = raw
        self._piece = memoryview(b"")
        self._more = True

    async def fill(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            if self._piece:
                count = min(len(self._piece), len(view) - filled)
                view[filled : filled + count] = self._piece[:count]
                self._piece = self._piece[count:]
                filled += count
            elif not self._more:
                break
            elif self._raw is not None and self._raw.begin():
                count = await self._raw.read_into(view[filled:])
                filled += count
                self._more = filled == len(view)  # less only where the body ends
            else:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                self._piece = memoryview(message.get("body", b""))
                self._more = message.get("more_body", False)
        return filled
