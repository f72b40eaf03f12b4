"""A closed-loop HTTP/1.1 load generator for HEAD requests, which wrk 4.1 cannot measure.

wrk's response parser waits for the body a HEAD response announces in Content-Length and never
completes (wg/wrk issue 198), so the HEAD row uses this instead: one uvloop event loop in its own
process, ``connections`` keep-alive sockets each sending the next request as soon as the previous
response is complete, printing the same result line as the benchmark's wrk script. It handles
responses without a body (HEAD, 204, 304) and with a Content-Length body.

Usage: python -m bench.loadgen HOST PORT METHOD PATH CONNECTIONS SECONDS [Header: value ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import cast

import uvloop


class Client(asyncio.Protocol):
    def __init__(self, request: bytes, head: bool, stats: Stats) -> None:
        self.request = request
        self.head = head
        self.stats = stats
        self.buffer = bytearray()
        self.body_left = -1  # -1: still reading the header block
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if self.stats.stopping:
            self.transport.close()
            return
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.body_left < 0:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            rest = len(self.buffer) - end - 4
            self.buffer.clear()
            status = int(head[9:12])
            if status >= 400:
                self.stats.status_errors += 1
            length = 0
            if not self.head and status not in (204, 304):
                marker = head.lower().find(b"\r\ncontent-length:")
                if marker < 0:
                    raise RuntimeError("response without Content-Length")
                line_end = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17 : line_end if line_end > 0 else None])
            self.body_left = length - rest
        else:
            self.body_left -= len(data)
        if self.body_left == 0:
            self.body_left = -1
            self.stats.latencies.append(time.perf_counter_ns() - self.sent_at)
            self.send()
        elif self.body_left < 0:
            raise RuntimeError("pipelined or oversized response")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stats.stopping:
            self.stats.read_errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


class Stats:
    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.status_errors = 0
        self.read_errors = 0
        self.stopping = False


def percentile(ordered: list[int], share: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] / 1000  # µs


async def generate(
    host: str,
    port: int,
    method: str,
    path: str,
    connections: int,
    seconds: float,
    headers: list[str],
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", *headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    stats = Stats()
    clients = []
    started = time.perf_counter()
    for _ in range(connections):
        _, client = await loop.create_connection(lambda: Client(request, method == "HEAD", stats), host, port)
        clients.append(client)
    await asyncio.sleep(seconds - (time.perf_counter() - started))
    stats.stopping = True
    duration = time.perf_counter() - started
    completed = len(stats.latencies)
    await asyncio.wait_for(asyncio.gather(*(client.closed for client in clients)), 30)
    ordered = sorted(stats.latencies)
    return {
        "requests": completed,
        "duration_us": int(duration * 1e6),
        "connect": 0,
        "read": stats.read_errors,
        "write": 0,
        "status": stats.status_errors,
        "timeout": 0,
        "p50_us": percentile(ordered, 0.50),
        "p99_us": percentile(ordered, 0.99),
    }


def main(argv: list[str]) -> None:
    host, port, method, path, connections, seconds, *headers = argv
    result = uvloop.run(generate(host, int(port), method, path, int(connections), float(seconds), headers))
    print("BENCH-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
