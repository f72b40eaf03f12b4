"""A connection's addresses as the event loop read them when it accepted the connection.

uvicorn asks the transport for its socket and calls ``getsockname`` and ``getpeername`` on it.
uvloop has already read both as it accepted the connection, and its socket object is a stand-in
that makes a new Python socket, and system calls, for each question: with the socket's family,
which the registry's protocol used to check, five calls more per connection (four
``getsockname``, one ``getpeername``). The transport's ``sockname`` and ``peername`` are the
addresses it read (asyncio's event loop reads them at accept as well).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def local_address(sockname: Any) -> tuple[str, int | None] | None:
    """``scope["server"]``: host and port, or a unix socket's path and no port."""
    if isinstance(sockname, tuple):
        return str(sockname[0]), int(sockname[1])
    if isinstance(sockname, str):
        return sockname, None
    return None


def remote_address(peername: Any) -> tuple[str, int] | None:
    """``scope["client"]``: host and port; none for a unix socket's client."""
    return (str(peername[0]), int(peername[1])) if isinstance(peername, tuple) else None


class KnownAddressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, taking the connection's addresses from the transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's, but for where the addresses come from (and its trace-level log line).
        self.connections.add(self)
        self.transport = transport
        self.flow = FlowControl(transport)
        self.server = local_address(transport.get_extra_info("sockname"))
        self.client = remote_address(transport.get_extra_info("peername"))
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
