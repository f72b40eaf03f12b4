"""The debug listener (``http.debug.addr``): metrics and health for operators, never the API.

Every worker serves it on its own socket beside the public one; any worker answers a scrape
with the sum over all workers (``workers.py``).
"""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send

from offload import to_thread

from .health import StorageHealth
from .metrics import Metrics

EXPOSITION_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class DebugApp:
    def __init__(self, metrics: Metrics | None, metrics_path: str, health: StorageHealth | None) -> None:
        self.metrics = metrics
        self.metrics_path = metrics_path
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.metrics is not None and path == self.metrics_path:
            self.metrics.flush()  # this worker's figures are exact; the others' flush on their own
            exposition = await to_thread(self.metrics.exposition)
            await _answer(send, 200, EXPOSITION_TYPE, exposition)
        elif path == "/debug/health":
            failing = self.health.failing() if self.health is not None else {}
            await _answer(send, 503 if failing else 200, b"application/json", json.dumps(failing).encode())
        else:
            await _answer(send, 404, b"text/plain; charset=utf-8", b"404 page not found\n")


async def _answer(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
