"""The rows users see behind the shipped nginx TLS site: the same nginx, site file and
certificate in front of each registry (``deploy/nginx/dockyard-tls.conf``, with only its ports
and upstream changed, as the deploy tests run it). Clients speak HTTP/1.1 over TLS 1.3, and
HTTP/2 for the small requests where h2load (Debian's nghttp2-client) is installed.

Every row reaches the registries as shipped: over each registry's unix socket (a second
instance of each on the same storage with ``http.net: unix``, Distribution's key too, behind its
own nginx whose upstream is that socket); its processes are the ones measured. Dockyard also has
the sample config's ``http.accelredirect`` (on filesystem storage), so its nginx, whose blobs
location points at the storage, reads the blobs clients download from there itself;
Distribution has no such mode and is relayed. Two more pull rows, both relays: over Dockyard's
unix socket without ``http.accelredirect`` (as with S3 storage; a third Dockyard on the same
storage, behind its own nginx), and over TCP, the site's documented variant for nginx on another
host (nginx in front of the registry's port). Distribution's column in the first is its shipped
pull again."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.data import Region
from bench.http import HTTPError
from bench.measure import Case, Outcome
from bench.references import NGINX_TLS
from bench.servers import Server, client_context, start_registry
from bench.settings import Settings
from bench.workloads.blobs import LargeBlob
from bench.workloads.image import ManyLayerImage
from bench.workloads.small import Endpoint, SmallRequests
from tests.deploy.shipped import sample_config
from tests.support.nginx import TLS_SITE, Nginx
from tests.support.tls import ServerCertificates

SMALL_ENDPOINTS = ("manifest-tag", "base")
"""GET rows only: bench.loadgen, which measures HEAD, speaks plain HTTP."""
CONCURRENCY = 16
SHIPPED = "as shipped: unix socket, nginx sending Dockyard's blobs"
UNIX_RELAY = "relayed over a unix socket (Dockyard without http.accelredirect, as on S3)"
TCP = "relayed over TCP (nginx on another host)"


class ThroughTLS:
    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        big: Path,
        certificates: ServerCertificates,
        stack: ExitStack,
        workers: int | None = None,
    ) -> None:
        """``workers``: Dockyard's, for the instances started here, as the run's (None: its default)."""
        self.settings = settings
        self.workers = workers
        self.workdir = workdir
        self.certificates = certificates
        self.stack = stack  # stops every nginx and registry instance when the run ends
        self.blobs = LargeBlob(settings, big, Region.of(big, 0, settings.blob_size))
        # Repositories of their own: the rows without TLS store the same content in the same registry.
        self.small = SmallRequests(settings, workdir, repository="bench/small-tls")
        self.image = ManyLayerImage(settings, repository="bench/image-tls")
        # Per registry: an instance of it on a unix socket reached through nginx (as shipped).
        self.fronts: dict[str, Server] = {}
        self.tcp_fronts: dict[str, Server] = {}  # per registry: the same relayed over TCP
        # Per registry: relayed over its unix socket, nginx sending no blob itself.
        self.relay_fronts: dict[str, Server] = {}

    def setup(self, server: Server) -> None:
        """Start nginx in front of ``server`` each way, then store what the rows read through the
        shipped one (untimed)."""
        nginx = self._nginx(server.name.replace(" ", "-"), f"{server.host}:{server.port}")
        self.tcp_fronts[server.name] = dataclasses.replace(
            server, port=nginx.port, tls=client_context(self.certificates)
        )
        relay = self._unix_front(server, f"{server.name}-unix", {})
        self.relay_fronts[server.name] = relay
        if server.kind == "dockyard":  # the sample config's key (the TLS rows run on the filesystem)
            shipped = {"accelredirect": sample_config()["http"]["accelredirect"]}
            front = self._unix_front(server, f"{server.name}-shipped", shipped)
        else:
            front = relay
        self.fronts[server.name] = front
        self.blobs.setup(front)
        self.small.store(front)
        for endpoint in self._small_endpoints():
            self.small.load(front, endpoint, CONCURRENCY, seconds=1)

    def _nginx(self, name: str, upstream: str, storage_root: Path | None = None) -> Nginx:
        nginx = Nginx(
            self.workdir / "tls" / name / "nginx",
            TLS_SITE,
            upstream,
            self.certificates,
            ipv6=False,
            storage_root=storage_root,
        )
        self.stack.callback(nginx.stop)
        nginx.start()
        return nginx

    def _unix_front(self, server: Server, name: str, http: dict[str, Any]) -> Server:
        """A second instance of ``server``'s registry on its storage (``http`` keys added to its
        config), listening on a unix socket behind an nginx of its own; its processes are the ones
        measured."""
        name = name.replace(" ", "-")
        # A short path: a unix socket's address holds 107 bytes at most.
        socket_dir = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
        self.stack.callback(shutil.rmtree, socket_dir, ignore_errors=True)
        instance = start_registry(
            server.kind,
            name,
            self.workdir / "tls" / name / "registry",
            self.workers if server.kind == "dockyard" else None,
            root=server.storage_root,
            binary=server.binary,
            storage={"s3": server.s3} if server.s3 else None,
            http=http,
            unix_socket=socket_dir / "registry.sock",
        )
        self.stack.callback(instance.stop)
        # nginx sends blobs itself from the storage when the registry hands them over.
        storage_root = server.storage_root if "accelredirect" in http else None
        nginx = self._nginx(name, f"unix:{socket_dir / 'registry.sock'}", storage_root)
        front = dataclasses.replace(instance, port=nginx.port, tls=client_context(self.certificates))
        front.wait_ready("/v2/")
        return front

    def cases(self) -> list[Case]:
        """The rows of the same names without TLS, run through each registry's nginx."""
        blob_rows = {case.key: case for case in self.blobs.cases()}
        small_rows = {case.key: case for case in self.small.cases()}
        image_rows = {case.key: case for case in self.image.cases()}
        chosen = [
            blob_rows["push-monolithic"],
            blob_rows["pull-full"],
            *(small_rows[f"{key}-c{CONCURRENCY}"] for key in SMALL_ENDPOINTS),
            image_rows["image-push"],
            image_rows["image-pull"],
        ]
        rows = [
            dataclasses.replace(
                case,
                key=f"tls-{case.key}",
                label=f"{case.label}, through nginx TLS ({SHIPPED})",
                prepare=self._through(case.prepare, self.fronts),
                measured=self._measured(self.fronts),
                target=None,  # the issue sets no bar over 2.8 here: ahead of 3.1, pulls near nginx
                note="and >= 80% of nginx over TLS" if case.key == "pull-full" else "",
                reference=NGINX_TLS if case.key == "pull-full" else None,
            )
            for case in chosen
        ]
        pull = blob_rows["pull-full"]

        def pull_through(key: str, how: str, fronts: dict[str, Server]) -> Case:
            return dataclasses.replace(
                pull,
                key=key,
                label=f"{pull.label}, through nginx TLS, {how}",
                prepare=self._through(pull.prepare, fronts),
                measured=self._measured(fronts),
                target=None,
                note="and >= 80% of nginx over TLS",
                reference=NGINX_TLS,
            )

        rows.insert(2, pull_through("tls-pull-unix", UNIX_RELAY, self.relay_fronts))
        rows.insert(3, pull_through("tls-pull-tcp", TCP, self.tcp_fronts))
        if shutil.which("h2load"):
            rows[4:4] = [self._http2_case(endpoint) for endpoint in self._small_endpoints()]
        return rows

    def _small_endpoints(self) -> list[Endpoint]:
        return [endpoint for endpoint in self.small.endpoints if endpoint.key in SMALL_ENDPOINTS]

    def _http2_case(self, endpoint: Endpoint) -> Case:
        def prepare(server: Server) -> Callable[[], Outcome]:
            front = self.fronts[server.name]
            return lambda: http2_load(front, endpoint, CONCURRENCY, self.settings.wrk_seconds)

        return Case(
            f"tls-h2-{endpoint.key}-c{CONCURRENCY}",
            f"{endpoint.label}, concurrency {CONCURRENCY}, through nginx TLS ({SHIPPED}), HTTP/2",
            "req/s",
            True,
            prepare,
            measured=self._measured(self.fronts),
        )

    @staticmethod
    def _through(
        prepare: Callable[[Server], Callable[[], Outcome]], fronts: dict[str, Server]
    ) -> Callable[[Server], Callable[[], Outcome]]:
        return lambda server: prepare(fronts[server.name])

    @staticmethod
    def _measured(fronts: dict[str, Server]) -> Callable[[Server], Server]:
        return lambda server: fronts[server.name]


H2LOAD_DONE = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed")
H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
H2LOAD_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b")
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
H2LOAD_ELAPSED = re.compile(r"finished in ([\d.]+)(us|ms|s),")
NGINX_REQUESTS_PER_CONNECTION = 1000


def http2_load(server: Server, endpoint: Endpoint, concurrency: int, seconds: int) -> Outcome:
    """h2load over HTTP/2: ``concurrency`` connections, one request in flight on each (as wrk's
    connections), every answer 2xx. nginx closes an HTTP/2 connection after
    ``keepalive_requests`` (1,000 by default) and h2load does not reconnect, so a run for a
    duration (``-D``) stops counting once each connection has made its 1,000 and still reports the
    whole duration as its time: 16,000 requests over 3 s read as 5,333 req/s whatever the server.
    The run is a fixed number of requests instead, 1,000 a connection, timed by h2load from its
    first connection to its last answer. ``seconds`` bounds the wait only."""
    headers = [argument for name, value in endpoint.headers for argument in ("-H", f"{name}: {value}")]
    url = f"https://{server.host}:{server.port}{endpoint.path}"
    requests = concurrency * NGINX_REQUESTS_PER_CONNECTION
    command = ["h2load", "-n", str(requests), "-c", str(concurrency), "-m", "1", "-t", "1", *headers, url]
    # A slow registry on a busy machine takes minutes for its 16,000.
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=seconds + 600)
    if finished.returncode != 0:
        raise HTTPError(f"h2load failed ({finished.returncode}): {finished.stdout[-2000:]}{finished.stderr}")
    return h2load_outcome(finished.stdout, requests, f"{endpoint.label} over HTTP/2")


def h2load_outcome(output: str, requests: int, what: str) -> Outcome:
    """The rate of an h2load run of ``requests`` requests from its summary (``output``): every
    request answered 2xx, divided by the time h2load took for them. h2load reports no
    percentiles: the latency kept is the mean."""
    done = H2LOAD_DONE.search(output)
    statuses = H2LOAD_STATUS.search(output)
    mean = H2LOAD_MEAN.search(output)
    elapsed = H2LOAD_ELAPSED.search(output)
    if done is None or statuses is None or mean is None or elapsed is None:
        raise HTTPError(f"{what}: no h2load summary in {output[-2000:]!r}")
    succeeded, failed = int(done.group(2)), int(done.group(3))
    others = sum(int(count) for count in statuses.groups()[1:])
    if failed or others or int(statuses.group(1)) != succeeded or succeeded != requests:
        raise HTTPError(f"{what}: {done.group(0)}; {statuses.group(0)} (expected {requests} 2xx)")
    extra = {"requests": float(succeeded), "mean_ms": float(mean.group(1)) * UNIT_MS[mean.group(2)]}
    elapsed_seconds = float(elapsed.group(1)) * UNIT_MS[elapsed.group(2)] / 1e3
    return Outcome(succeeded / elapsed_seconds, extra)
