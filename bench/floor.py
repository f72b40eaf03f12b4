"""The fastest Python servers this machine runs, for the small-request limit (``bench.limits``).

``python -m bench.floor KIND PORT WORKERS`` listens on 127.0.0.1:PORT with WORKERS processes
sharing one socket, as the registry's workers do, each on a uvloop event loop:

- ``protocol``: an ``asyncio.Protocol`` that answers every request it reads with the same bytes
  the registry sends for GET ``/v2/`` (its headers, without a date): no HTTP parsing, no
  application. What is left is the kernel, the loopback and the event loop.
- ``uvicorn``: uvicorn's own HTTP protocol (httptools) and an ASGI application that answers at
  once with those headers and body: the web server's part of a request, without the registry's.
- ``registry-protocol``: the same application behind the registry's HTTP protocol (uvicorn's,
  with one write per answer and one keep-alive timer per idle spell): what the registry's
  application adds is the difference between this and the registry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import uvloop

from registry.supervisor import bind

BODY = b"{}"
HEADERS = [
    (b"content-length", str(len(BODY)).encode()),
    (b"content-type", b"application/json"),
    (b"docker-distribution-api-version", b"registry/2.0"),
    (b"x-request-id", b"cc10ebe72e238d5e0000000000000000"),
]
ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    + b"".join(name + b": " + value + b"\r\n" for name, value in HEADERS)
    + b"\r\n"
    + BODY
)
END_OF_HEAD = b"\r\n\r\n"


class FixedAnswer(asyncio.Protocol):
    """Answers each request head it reads (bodiless requests only) with ``ANSWER``."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        heads = data.count(END_OF_HEAD)
        self.pending = data[data.rfind(END_OF_HEAD) + len(END_OF_HEAD) :] if heads else data
        if heads:
            self.transport.write(ANSWER * heads)


async def trivial_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def serve_protocol(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FixedAnswer, sock=sock)
        await server.serve_forever()

    uvloop.run(main())


def serve_uvicorn(sock: socket.socket, registry_protocol: bool = False) -> None:
    import uvicorn  # noqa: PLC0415 - only these kinds need it

    from registry.zerocopy import ZeroCopyHTTPProtocol  # noqa: PLC0415 - imports uvicorn

    config = uvicorn.Config(
        trivial_app,
        http=ZeroCopyHTTPProtocol if registry_protocol else "httptools",
        loop="uvloop",
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str]) -> None:
    kind, port, workers = argv[0], int(argv[1]), int(argv[2])
    kinds: dict[str, Callable[[socket.socket], None]] = {
        "protocol": serve_protocol,
        "uvicorn": serve_uvicorn,
        "registry-protocol": partial(serve_uvicorn, registry_protocol=True),
    }
    serve = kinds[kind]
    sock = bind("127.0.0.1", port)
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            serve(sock)
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(0))  # uvicorn sets its own
    try:
        serve(sock)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main(sys.argv[1:])
