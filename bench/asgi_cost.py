"""CPU per request through the registry's ASGI application, in this process: no sockets, no
event loop wake-ups, no other process between two requests, so on a busy machine it is far
steadier than a server's CPU under load. ``bench.observe --in-process`` runs it.

It imports only the registry (and the standard library), so it measures whichever checkout
comes first on ``PYTHONPATH``. One variant per process, since logging is configured per process.
Argument: one JSON object with ``config`` (a config file), ``bare`` (serve the application
without its observing layer), ``requests`` (row key, method, path, headers), ``count`` and
``log`` (the file the logs go to), and optionally ``bytecodes``: count the Python bytecodes each
request executes (``sys.settrace``, over 200 requests) rather than time it, a figure no other
process on the machine can move. Prints one JSON object: row key to µs (or bytecodes) per request.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging.config
import sys
import time
from types import FrameType
from typing import Any

from registry.app import create_app
from registry.config import load_config
from registry.logs import logging_config
from registry.observability.compose import Observability


def application(config_path: str, bare: bool) -> Any:
    config = load_config(config_path)
    if not bare:
        return create_app(config)
    observed = Observability.application
    Observability.application = lambda self, public, *args, **kwargs: public  # type: ignore[method-assign]
    try:
        return create_app(config)
    finally:
        Observability.application = observed  # type: ignore[method-assign]


async def request(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000), "state": {},
    }  # fmt: skip
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(spec: dict[str, Any]) -> dict[str, float]:
    app = application(spec["config"], spec["bare"])
    results: dict[str, float] = {}
    for key, method, path, header_pairs in spec["requests"]:
        headers = [(b"host", b"127.0.0.1:5000"), (b"user-agent", b"wrk/4.1")]
        headers += [(name.lower().encode(), value.encode()) for name, value in header_pairs]
        for _ in range(200):  # warm, and check
            status = await request(app, method, path, headers)
            if not 200 <= status < 300:
                raise SystemExit(f"answered {status} to {method} {path}")
        if spec.get("bytecodes"):
            results[key] = await bytecodes(app, method, path, headers)
            continue
        gc.collect()
        started = time.process_time()
        for _ in range(spec["count"]):
            await request(app, method, path, headers)
        results[key] = (time.process_time() - started) / spec["count"] * 1e6
    return results


async def bytecodes(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> float:
    """Python bytecodes executed per request: the same for every run of the same code."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        count += event == "opcode"
        return trace

    sys.settrace(trace)
    try:
        for _ in range(200):
            await request(app, method, path, headers)
    finally:
        sys.settrace(None)
    return count / 200


def main() -> None:
    spec = json.loads(sys.argv[1])
    log = open(spec["log"], "a")  # noqa: SIM115 - the logs' stream for the whole run
    sys.stderr = log
    logging.config.dictConfig(logging_config(load_config(spec["config"]).log))
    print(json.dumps(asyncio.run(measure(spec))), file=sys.__stdout__)


if __name__ == "__main__":
    main()
