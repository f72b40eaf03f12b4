"""``python -m bench.notifications``: what webhooks cost the requests that cause them.

Dockyard runs twice on fresh filesystem storage: without ``notifications`` and with one
endpoint (a receiver in this process answering 200). Each repetition, interleaved A,B / B,A,
times small blob pushes (monolithic ``POST ?digest=`` of 1 KiB: each answered only once its
event is in the queue) and manifest GETs by tag (pulls: their events are queued in batches,
never waited for), from ``--connections`` client threads. The rows are requests per second,
the median over repetitions, and the ratio with notifications to without.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.servers import PROJECT, Server, _spawn
from tests.support.processes import free_port

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Receiver(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.received += len(json.loads(body)["events"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start(workdir: Path, workers: int, receiver_port: int | None) -> Server:
    workdir.mkdir(parents=True)
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if receiver_port is not None:
        url = f"http://127.0.0.1:{receiver_port}/events"
        config["notifications"] = {"endpoints": [{"name": "bench", "url": url, "timeout": "5s"}]}
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "registry", "serve", str(config_path), "--workers", str(workers)]
    return Server(workdir.name, port, workdir, _spawn(command, workdir, cwd=PROJECT)).ready()


def rate(url: str, connections: int, requests: int, one: Callable[[httpx.Client, int], None]) -> float:
    """Requests per second of ``requests`` calls of ``one`` spread over ``connections`` clients."""
    per_client = requests // connections

    def run(client_index: int) -> None:
        with httpx.Client(base_url=url) as client:
            for index in range(per_client):
                one(client, client_index * per_client + index)

    began = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(run, range(connections)))
    return per_client * connections / (time.perf_counter() - began)


def push(client: httpx.Client, index: int) -> None:
    data = os.urandom(1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = client.post("/v2/bench/push/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text


def prepare_pull(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        config = b'{"os":"linux"}'
        push_data = [config]
        for data in push_data:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            client.post("/v2/bench/pull/blobs/uploads/", params={"digest": digest}, content=data)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        response = client.put(
            "/v2/bench/pull/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert response.status_code == 201, response.text


def pull(client: httpx.Client, index: int) -> None:
    response = client.get("/v2/bench/pull/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, response.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repetitions", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as temp:
        servers: dict[str, Server] = {}
        urls: dict[str, str] = {}
        try:
            for name, receiver in (("off", None), ("on", server.server_address[1])):
                servers[name] = start(Path(temp) / name, args.workers, receiver)
                urls[name] = f"http://{servers[name].host}:{servers[name].port}"
                prepare_pull(urls[name])
            results: dict[tuple[str, str], list[float]] = {}
            for repetition in range(args.repetitions):
                order = ("off", "on") if repetition % 2 == 0 else ("on", "off")
                for row, one in (("push 1 KiB blob", push), ("GET manifest by tag", pull)):
                    for name in order:
                        measured = rate(urls[name], args.connections, args.requests, one)
                        results.setdefault((row, name), []).append(measured)
        finally:
            for started in servers.values():
                started.stop()
    print(
        f"| row ({args.connections} connections, {args.workers} workers) | without | with webhooks | ratio |"
    )
    print("|---|---|---|---|")
    for row in ("push 1 KiB blob", "GET manifest by tag"):
        off = statistics.median(results[(row, "off")])
        on = statistics.median(results[(row, "on")])
        print(f"| {row} | {off:.0f}/s | {on:.0f}/s | {on / off:.2f}x |")
    print(f"(events received: {Receiver.received})")


if __name__ == "__main__":
    main()
