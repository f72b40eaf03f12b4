"""Files sent from the page cache to the socket by the kernel (``sendfile``), not through the process.

A connection on a unix socket (``http.net: unix``: a proxy on the same machine) offers the ASGI
``http.response.zerocopysend`` extension: the application sends the response head as usual, then
``{"type": "http.response.zerocopysend", "file": <file object>, "offset": ..., "count": ...,
"more_body": ...}``; the bytes go from the file to the socket without being read into the
process. Behind nginx relaying a download through TLS, the registry's part of the work then
nearly disappears (``bench/TLS.md``). TCP connections are not offered it: over loopback, pages
sent by ``sendfile`` cost the receiving proxy more than the registry saves (nginx took a third
more CPU per pull), and they keep the registry's large writes.

The file is sent in windows: a worker thread first brings a window's pages into the page cache,
so a cold file never blocks the event loop, then the loop sends them with non-blocking
``sendfile`` calls, waiting for the socket to take more between them. The socket belongs to the
transport; the calls use a duplicate of its descriptor, which the loop may watch itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import socket
from typing import Any, cast

from offload import to_bulk_thread
from storage_drivers.filesystem import populate

from .coalescing import CoalescingHTTPProtocol, CoalescingTransport

ZEROCOPY_SEND = "http.response.zerocopysend"
"""The ASGI extension's name, in ``scope["extensions"]`` and as the message's type."""
WINDOW = 8 << 20
"""Bytes brought into the page cache before each run of ``sendfile`` calls."""
BLOBS_IN_PATH = "/blobs/"
"""In the path of every blob download (``/v2/<name>/blobs/<digest>``), the extension's one user."""
UNIX_SEND_BUFFER = 1 << 20
"""Bytes a unix socket may queue (the kernel doubles it, within ``net.core.wmem_max``)."""


def offers_zerocopy(scope: Any) -> bool:
    return ZEROCOPY_SEND in (scope.get("extensions") or {})


class ZeroCopyHTTPProtocol(CoalescingHTTPProtocol):
    """The registry's HTTP protocol, offering ``http.response.zerocopysend`` on unix sockets."""

    _stalled: asyncio.Future[None] | None = None
    """While a file waits for the socket to take more: woken when the connection is lost."""

    _unix = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._unix = self.server is not None and self.server[1] is None  # a path, no port

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # the request's task starts once this returns
        if not self._unix:
            return
        cycle = self.cycle
        scope = cast(dict[str, Any], self.scope)
        # Offered to the requests that can use it, blob downloads: the others are spared the
        # extension and the wrapped send.
        if (
            cycle is None
            or cycle.scope is not scope  # no new cycle: uvicorn answered the request itself
            or scope["method"] != "GET"
            or BLOBS_IN_PATH not in scope["path"]
            or not isinstance(self.transport, CoalescingTransport)
        ):
            return
        scope["extensions"] = {**scope.get("extensions", {}), ZEROCOPY_SEND: {}}
        send = cycle.send

        async def send_or_sendfile(message: Any) -> None:
            if message["type"] != ZEROCOPY_SEND:
                await send(message)
                return
            if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding:
                raise RuntimeError("zerocopysend needs a started response with a Content-Length")
            if cycle.flow.write_paused and not cycle.disconnected:
                await cycle.flow.drain()
            if cycle.disconnected:
                return
            count: int = message["count"]
            if count > cycle.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            try:
                await self.send_file(message["file"].fileno(), message["offset"], count)
            except OSError:  # the client went away (or the connection was closed): as uvicorn
                cycle.disconnected = True  # does when a write finds the connection lost
                self.transport.close()
                return
            cycle.expected_content_length -= count
            more_body = message.get("more_body", False)
            await send({"type": "http.response.body", "body": b"", "more_body": more_body})

        cycle.send = send_or_sendfile  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stalled is not None and not self._stalled.done():
            self._stalled.set_exception(ConnectionAbortedError("the connection was lost"))
        super().connection_lost(exc)

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """``count`` bytes of ``fd`` from ``offset`` to the socket, after what the transport
        holds; OSError when the connection fails or is closed meanwhile."""
        transport = cast(CoalescingTransport, self.transport)
        sock = transport.get_extra_info("socket")
        out = os.dup(sock.fileno())
        try:
            transport.flush()  # the response head, held for the body's first write
            # A unix socket queues 200 KiB by default: larger batches, fewer wake-ups.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SEND_BUFFER)
            while transport.get_write_buffer_size():
                await self._writable(out)
            position, end = offset, offset + count
            while position < end:
                stop = min(position + WINDOW, end)
                await to_bulk_thread(_page_in, fd, position, stop - position)
                while position < stop:
                    if transport.is_closing():
                        raise ConnectionAbortedError("the connection was closed")
                    try:
                        sent = os.sendfile(out, fd, position, stop - position)
                    except BlockingIOError:
                        await self._writable(out)
                        continue
                    if sent == 0:
                        raise OSError("the file ended before the bytes to send")
                    position += sent
        finally:
            os.close(out)

    async def _writable(self, fd: int) -> None:
        """Until the socket takes more (or fails: the next call says how); ConnectionAbortedError
        when the connection is lost meanwhile."""
        stalled = self._stalled = self.loop.create_future()

        def wake() -> None:
            if not stalled.done():
                stalled.set_result(None)

        self.loop.add_writer(fd, wake)
        try:
            await stalled
        finally:
            self.loop.remove_writer(fd)
            self._stalled = None


def _page_in(fd: int, start: int, length: int) -> None:
    """Bring the pages of ``length`` bytes from ``start`` into the page cache, waiting for them."""
    base = start - start % mmap.ALLOCATIONGRANULARITY
    with contextlib.closing(mmap.mmap(fd, start + length - base, prot=mmap.PROT_READ, offset=base)) as mapped:
        populate(mapped, 0, len(mapped), 0)
