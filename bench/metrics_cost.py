"""What metrics add to one request, part by part, each in a tight loop in this process: the
observing layer (``Observe``) around an application that answers at once, with metrics off and
on; a filesystem driver's ``get_content`` of a link, bare and through the timing wrapper; an
access decision, bare and counted. Steadier on a busy machine than whole requests, since each
loop runs only the code that differs.

```sh
.venv/bin/python -m bench.metrics_cost            # 5 rounds of 100,000 calls per part
.venv/bin/python -m bench.metrics_cost -n 3 --count 50000
```
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.datastructures import Headers

from auth import Access, AccessController, Grant
from bench.summary import spread
from registry.observability.access import ObservedAccessController
from registry.observability.events import EventStream
from registry.observability.exchange import Observe
from registry.observability.metrics import Metrics
from registry.observability.storage import ObservedDriver
from storage_drivers import create_driver

BLOB_PATH = "/v2/bench/blobs/sha256:" + "a" * 64
HEADERS = [(b"host", b"127.0.0.1:5000"), (b"user-agent", b"wrk/4.1"), (b"accept", b"*/*")]


async def answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    pass


class Anyone(AccessController):
    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        return Grant(None, frozenset())


def observer(metrics: Metrics | None) -> Callable[[], Awaitable[None]]:
    observe = Observe(
        answer, metrics=metrics, events=EventStream(), access_logged=False, trusted_proxies=[],
        fixed_routes={}, mounted_routes={}, debug=(5001, answer) if metrics is not None else None,
    )  # fmt: skip

    async def call() -> None:
        scope = {
            "type": "http", "method": "HEAD", "path": BLOB_PATH, "raw_path": BLOB_PATH.encode(),
            "query_string": b"", "headers": list(HEADERS), "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 5000),
        }  # fmt: skip
        await observe(scope, receive, send)

    return call


async def per_call(call: Callable[[], Awaitable[Any]], count: int) -> float:
    """CPU µs per call."""
    started = time.process_time()
    for _ in range(count):
        await call()
    return (time.process_time() - started) / count * 1e6


async def measure(rounds: int, count: int) -> dict[str, list[float]]:
    metrics = Metrics()
    parts: dict[str, Callable[[], Awaitable[Any]]] = {
        "observe, metrics off": observer(None),
        "observe, metrics on": observer(metrics),
    }
    with tempfile.TemporaryDirectory(prefix="dockyard-metrics-cost-") as root:
        driver = create_driver("filesystem", {"rootdirectory": root})
        await driver.put_content("/bench/link", b"sha256:" + b"a" * 64)
        observed = ObservedDriver(driver, metrics)
        parts["get_content, bare"] = lambda: driver.get_content("/bench/link")
        parts["get_content, timed"] = lambda: observed.get_content("/bench/link")
        headers = Headers(raw=list(HEADERS))
        bare, counted = Anyone(), ObservedAccessController(Anyone(), metrics)
        parts["authorize, bare"] = lambda: bare.authorize(headers, [])
        parts["authorize, counted"] = lambda: counted.authorize(headers, [])
        results: dict[str, list[float]] = {name: [] for name in parts}
        for _ in range(rounds):
            for name, call in parts.items():
                results[name].append(await per_call(call, count))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.metrics_cost", description=__doc__.partition("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.rounds, args.count))
    print(f"CPU µs per call: median (min to max) of {args.rounds} rounds of {args.count:,} calls\n")
    print("| Part | µs |")
    print("| --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {spread(values, 2)} |")


if __name__ == "__main__":
    main()
