"""Building responses: the spec's error JSON, JSON bodies, and headers every response carries."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ErrorCode, RegistryError

log = logging.getLogger("registry")

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")


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
    body = json.dumps(document, separators=(",", ":")).encode()
    return Response(body, status, headers, media_type=media_type)


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status, {"Content-Length": "0", **(headers or {})})


class CommonHeaders:
    """Adds ``Docker-Distribution-API-Version`` and the configured ``http.headers`` to every
    response, errors included."""

    def __init__(self, app: ASGIApp, extra: dict[str, list[str]]) -> None:
        self.app = app
        self.headers = [API_VERSION] + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, values in extra.items()
            for value in values
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UnexpectedErrors:
    """Answers an unexpected exception with 500 ``UNKNOWN``: logged once with its traceback and the
    request, never sent to the client, and the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # the response is under way: only dropping the connection can signal it
            await error_response(RegistryError(ErrorCode.UNKNOWN), scope["method"])(scope, receive, send)
