"""Small requests at several concurrencies: req/s, latency, server CPU per request.

Each endpoint is checked once with the benchmark's own client (status, digest, body) before wrk
loads it; during the run every answer must be 2xx/3xx with no socket errors.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.api import (
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    check_digest_header,
    get_manifest,
    image_manifest,
    push_bytes_like_docker,
    put_manifest,
    sha256_digest,
)
from bench.http import Connection, HTTPError
from bench.measure import Case, Outcome
from bench.servers import PROJECT, Server
from bench.settings import Settings

REPOSITORY = "bench/small"

LUA_TEMPLATE = """\
wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %.1f, "p99_us": %.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    target: float  # speedup over Distribution 2.8 that Distribution 3.1 reached


class SmallRequests:
    def __init__(
        self, settings: Settings, workdir: Path, repository: str = REPOSITORY, tags_list: bool = True
    ) -> None:
        """``tags_list``: time and check GET tags/list too (Distribution 3.1 on S3 lists the
        first 10 tags only, whatever ``n`` says: no row there)."""
        self.settings = settings
        self.workdir = workdir
        self.repository = repository
        rng = random.Random(4096)
        self.layer = rng.randbytes(4096)
        self.layer_digest = sha256_digest(self.layer)
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "seed": 4096}).encode()
        self.config_digest = sha256_digest(self.config)
        self.manifest = image_manifest(
            (self.config_digest, len(self.config)), [(self.layer_digest, len(self.layer))]
        )
        self.manifest_digest = sha256_digest(self.manifest)
        self.tags = ["latest"] + [f"v{number}" for number in range(1, settings.tag_count)]
        accept = (("Accept", MANIFEST_ACCEPT["Accept"]),)
        self.endpoints = [
            Endpoint(
                "head-blob", "HEAD blob", "HEAD", f"/v2/{self.repository}/blobs/{self.layer_digest}", (), 5.8
            ),
            Endpoint(
                "manifest-tag",
                "GET manifest by tag",
                "GET",
                f"/v2/{self.repository}/manifests/latest",
                accept,
                5.3,
            ),
            Endpoint(
                "manifest-digest",
                "GET manifest by digest",
                "GET",
                f"/v2/{self.repository}/manifests/{self.manifest_digest}",
                accept,
                6.0,
            ),
            Endpoint("base", "GET /v2/", "GET", "/v2/", (), 10.3),
            Endpoint(
                "tags-list",
                f"GET tags/list ({len(self.tags)} tags)",
                "GET",
                f"/v2/{self.repository}/tags/list",
                (),
                4.0,
            ),
        ]
        if not tags_list:
            self.endpoints = [endpoint for endpoint in self.endpoints if endpoint.key != "tags-list"]

    def setup(self, server: Server) -> None:
        self.store(server)
        for endpoint in self.endpoints:  # warm every path once before anything is timed
            self.load(server, endpoint, concurrency=16, seconds=1)

    def store(self, server: Server) -> None:
        """The image the endpoints read, checked once."""
        with server.connect() as connection:
            push_bytes_like_docker(connection, self.repository, self.config, self.config_digest)
            push_bytes_like_docker(connection, self.repository, self.layer, self.layer_digest)
            for tag in self.tags:
                put_manifest(connection, self.repository, tag, self.manifest)
            self.check(connection)

    def check(self, connection: Connection) -> None:
        """Every endpoint answers correctly once, with the client that can check digests."""
        head = connection.request("HEAD", f"/v2/{self.repository}/blobs/{self.layer_digest}")
        head.expect(200)
        check_digest_header(head, self.layer_digest)
        if head.header("Content-Length") != str(len(self.layer)):
            raise HTTPError(f"HEAD blob Content-Length {head.header('Content-Length')!r}")
        for reference in ("latest", self.manifest_digest):
            body = get_manifest(connection, self.repository, reference, self.manifest_digest)
            if json.loads(body)["mediaType"] != DOCKER_MANIFEST:
                raise HTTPError("manifest came back with another media type")
        connection.request("GET", "/v2/").expect(200)
        if not any(endpoint.key == "tags-list" for endpoint in self.endpoints):
            return
        tags = json.loads(connection.request("GET", f"/v2/{self.repository}/tags/list").body)
        # Distribution 2.8 lists tags in directory order: compare contents, not order.
        if tags["name"] != self.repository or sorted(tags["tags"]) != sorted(self.tags):
            raise HTTPError(f"tags/list answered {tags}")

    def cases(self) -> list[Case]:
        cases = []
        for endpoint in self.endpoints:
            for concurrency in self.settings.concurrencies:
                cases.append(
                    Case(
                        f"{endpoint.key}-c{concurrency}",
                        f"{endpoint.label}, concurrency {concurrency}",
                        "req/s",
                        True,
                        self._case(endpoint, concurrency),
                        target=endpoint.target,
                    )
                )
        return cases

    def _case(self, endpoint: Endpoint, concurrency: int) -> Callable[[Server], Callable[[], Outcome]]:
        def prepare(server: Server) -> Callable[[], Outcome]:
            return lambda: self.load(server, endpoint, concurrency, self.settings.wrk_seconds)

        return prepare

    def load(self, server: Server, endpoint: Endpoint, concurrency: int, seconds: int) -> Outcome:
        """Run wrk (or, for HEAD, bench.loadgen) against one endpoint and check every answer."""
        url = f"{server.scheme}://{server.host}:{server.port}{endpoint.path}"
        if endpoint.method == "HEAD":
            if server.tls is not None:
                raise HTTPError("bench.loadgen speaks plain HTTP only")
            headers = [f"{name}: {value}" for name, value in endpoint.headers]
            command = [
                sys.executable,
                "-m",
                "bench.loadgen",
                server.host,
                str(server.port),
                endpoint.method,
                endpoint.path,
                str(concurrency),
                str(seconds),
                *headers,
            ]
        else:
            script = self.workdir / f"wrk-{endpoint.key}.lua"
            if not script.exists():
                headers = [f'wrk.headers["{name}"] = "{value}"' for name, value in endpoint.headers]
                script.write_text(LUA_TEMPLATE.format(method=endpoint.method, headers="\n".join(headers)))
            threads = min(2, concurrency)  # two cores: more threads would only steal server CPU
            command = [
                "wrk",
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ]
        finished = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=seconds + 60, cwd=PROJECT
        )
        lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH-RESULT")]
        if finished.returncode != 0 or not lines:
            output = finished.stdout + finished.stderr
            raise HTTPError(f"{command[0]} failed ({finished.returncode}): {output}")
        result = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
        errors = {k: result[k] for k in ("connect", "read", "write", "status", "timeout")}
        if any(errors.values()) or result["requests"] == 0:
            raise HTTPError(f"{endpoint.label} under load: {result['requests']} requests, {errors}")
        rate = result["requests"] / (result["duration_us"] / 1e6)
        extra = {
            "requests": float(result["requests"]),
            "p50_ms": result["p50_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000,
        }
        return Outcome(rate, extra)
