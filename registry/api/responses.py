"""Building responses: the spec's error JSON, JSON bodies, empty answers, files the server sends."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import RegistryError
from ..storage.blobs import close_stream
from ..zerocopy import ZEROCOPY_SEND


class EncodedResponse(Response):
    """A response whose headers come encoded, as the server sends them: Starlette's ``Response``
    encodes a dictionary's names and values on every response, which the most frequent small
    answers (``/v2/``, HEAD of a blob) need not pay. Names must be lower case."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status
        self.raw_headers = headers
        self.body = body
        self.background = None


def error_response(error: RegistryError, method: str = "GET") -> Response:
    body = json.dumps(error.body()).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", **error.headers}
    if method == "HEAD":
        return Response(b"", error.code.status, {**headers, "Content-Length": str(len(body))})
    return Response(body, error.code.status, headers)


def json_response(
    document: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media_type: str = "application/json",
) -> Response:
    """``document`` as compact JSON; ``media_type`` must not be ``text/*`` (no charset is added)."""
    body = json.dumps(document, separators=(",", ":")).encode()
    return EncodedResponse(status, [*_encoded(headers), *_typed(body, media_type)], body)


def _encoded(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """Headers as the server sends them, in Starlette's encoding: the names in lower case."""
    if not headers:
        return []
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def _typed(body: bytes, media_type: str) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    return (b"content-length", b"%d" % len(body)), (b"content-type", media_type.encode("latin-1"))


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status, {"Content-Length": "0", **(headers or {})})


class ZeroCopyResponse(Response):
    """``length`` bytes of the open file ``fd`` from ``offset``, which the server sends from the
    file itself (``http.response.zerocopysend``: only where the scope offers it); closes ``fd``."""

    def __init__(self, fd: int, offset: int, length: int, status: int, headers: dict[str, str]) -> None:
        super().__init__(None, status, {**headers, "Content-Length": str(length)})
        self.file = os.fdopen(fd, "rb", buffering=0)
        self.offset = offset
        self.length = length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.file:
            head = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await send(head)
            body = {"type": ZEROCOPY_SEND, "file": self.file, "offset": self.offset, "count": self.length}
            await send(body)


class StreamedResponse(Response):
    """``body`` sent as it is read, closed once sent or once the client has gone (checked between
    chunks). Starlette's ``StreamingResponse`` watches for a client going away in an anyio task
    group on servers of ASGI spec before 2.4 (uvicorn's): about 60 µs of CPU a response, and a
    worker's first one imported anyio's asyncio backend (about 20 ms). Here a plain task does."""

    def __init__(self, body: AsyncIterator[bytes | memoryview], status: int, headers: dict[str, str]) -> None:
        super().__init__(None, status, headers)
        self.chunks = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk in self.chunks:
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            await close_stream(self.chunks)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
