"""Building responses: the spec's error JSON, JSON bodies, empty answers."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from ..errors import RegistryError


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
    body = json.dumps(document, separators=(",", ":")).encode()
    return Response(body, status, headers, media_type=media_type)


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status, {"Content-Length": "0", **(headers or {})})
