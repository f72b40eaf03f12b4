"""One send per response where uvicorn makes two.

uvicorn writes a response's status line and headers as soon as the application starts the
response, and its body as a second write: two system calls, two TCP segments, and a client that
wakes up for the head and again for the body. Here the head waits for what follows it: the first
body write takes it along in one vectored write, and a response without a body (HEAD, 204, 304)
sends it when the response completes. Go's server, which Distribution uses, buffers its headers
the same way. Nothing else waits: an interim ``100 Continue`` and every body write go out at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .addresses import KnownAddressProtocol
from .keepalive import IdleSpellProtocol
from .polling import PollingProtocol
from .rawbody import RawBodyProtocol

RESPONSE_HEAD = b"HTTP/1.1 "
INTERIM_HEAD = b"HTTP/1.1 1"


class CoalescingTransport(asyncio.Transport):
    """``transport`` with each final response head held until the write after it, or until
    ``flush``."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.writelines([head, data])
        elif isinstance(data, bytes) and data.startswith(RESPONSE_HEAD) and not data.startswith(INTERIM_HEAD):
            self._head = data  # uvicorn writes a head as one bytes object
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send a held response head."""
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._head = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return len(self._head or b"") + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class CoalescingHTTPProtocol(RawBodyProtocol, PollingProtocol, IdleSpellProtocol, KnownAddressProtocol):
    """The registry's HTTP protocol, sending each response's head with its body, reading large
    bodies raw, polling for a moment after an answer that leaves the worker idle, keeping one
    keep-alive timer per idle spell and taking the connection's addresses from the event loop
    (``IdleSpellProtocol`` and ``KnownAddressProtocol`` come last of the registry's classes:
    their hooks replace uvicorn's)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))

    def on_response_complete(self) -> None:
        if isinstance(self.transport, CoalescingTransport):
            self.transport.flush()
        super().on_response_complete()
