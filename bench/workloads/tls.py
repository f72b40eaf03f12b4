"""The rows users see behind the shipped nginx TLS site: the same nginx, site file and
certificate in front of each registry (``deploy/nginx/dockyard-tls.conf``, with only its ports
and upstream changed, as the deploy tests run it). Clients speak HTTP/1.1 over TLS 1.3."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.data import Region
from bench.measure import Case, Outcome
from bench.servers import Server, client_context
from bench.settings import Settings
from bench.workloads.blobs import LargeBlob
from bench.workloads.image import ManyLayerImage
from bench.workloads.small import SmallRequests
from tests.support.nginx import TLS_SITE, Nginx
from tests.support.tls import ServerCertificates

SMALL_ENDPOINTS = ("manifest-tag", "base")
"""GET rows only: bench.loadgen, which measures HEAD, speaks plain HTTP."""
CONCURRENCY = 16


class ThroughTLS:
    def __init__(
        self, settings: Settings, workdir: Path, big: Path, certificates: ServerCertificates, stack: ExitStack
    ) -> None:
        self.settings = settings
        self.workdir = workdir
        self.certificates = certificates
        self.stack = stack  # stops every nginx when the run ends
        self.blobs = LargeBlob(settings, big, Region.of(big, 0, settings.blob_size))
        self.small = SmallRequests(settings, workdir)
        self.image = ManyLayerImage(settings)
        self.fronts: dict[str, Server] = {}  # per registry: the same registry reached through nginx

    def setup(self, server: Server) -> None:
        """Start nginx in front of ``server``, then store what the rows read through it (untimed)."""
        nginx = Nginx(
            self.workdir / "tls" / server.name.replace(" ", "-"),
            TLS_SITE,
            f"{server.host}:{server.port}",
            self.certificates,
            ipv6=False,
        )
        self.stack.callback(nginx.stop)
        nginx.start()
        front = dataclasses.replace(server, port=nginx.port, tls=client_context(self.certificates))
        self.fronts[server.name] = front
        self.blobs.setup(front)
        self.small.store(front)
        for endpoint in self.small.endpoints:
            if endpoint.key in SMALL_ENDPOINTS:
                self.small.load(front, endpoint, CONCURRENCY, seconds=1)

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
        return [
            dataclasses.replace(
                case,
                key=f"tls-{case.key}",
                label=f"{case.label}, through nginx TLS",
                prepare=self._through_front(case.prepare),
                target=None,  # the issue sets no bar over 2.8 here: ahead of 3.1, pulls near nginx
                note="and >= 80% of nginx over TLS" if case.key == "pull-full" else "",
            )
            for case in chosen
        ]

    def _through_front(
        self, prepare: Callable[[Server], Callable[[], Outcome]]
    ) -> Callable[[Server], Callable[[], Outcome]]:
        return lambda server: prepare(self.fronts[server.name])
