"""The registry's HTTP protocol serving an ASGI application on an event loop in a thread, over a
real socket: for tests of the protocol itself, without a whole registry around it."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.server import ServerState

from registry.coalescing import CoalescingHTTPProtocol


class LoopServer:
    """``protocol`` (the registry's own by default) serving ``app`` on ``loop`` in a thread, on
    a TCP port of 127.0.0.1 or the unix socket ``path``; ``settings`` go to uvicorn's
    configuration (e.g. ``timeout_keep_alive``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: ASGIApp,
        protocol: type[CoalescingHTTPProtocol] = CoalescingHTTPProtocol,
        path: str | None = None,
        **settings: Any,
    ) -> None:
        self.loop = loop
        config = uvicorn.Config(app, lifespan="off", log_config=None, http=protocol, **settings)
        self.state = state = ServerState()
        self.thread = threading.Thread(target=loop.run_forever, daemon=True)
        self.thread.start()

        def serving() -> CoalescingHTTPProtocol:
            return protocol(config=config, server_state=state, app_state={}, _loop=loop)

        listening = (
            loop.create_server(serving, "127.0.0.1", 0)
            if path is None
            else loop.create_unix_server(serving, path)
        )
        self.server = asyncio.run_coroutine_threadsafe(listening, loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1] if path is None else 0

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
