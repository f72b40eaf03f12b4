"""Walking the catalog of many repositories page by page, following Link headers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from bench.api import (
    image_manifest,
    mount_blob,
    push_bytes_like_docker,
    put_manifest,
    sha256_digest,
    target_of,
)
from bench.http import Connection, HTTPError
from bench.measure import Case, Outcome
from bench.parallel import over_connections
from bench.servers import Server
from bench.settings import Settings

SOURCE = "catalog/source"
NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class CatalogWalk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = [f"catalog/repo-{i:05d}" for i in range(settings.catalog_repositories)]
        self.config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        self.config_digest = sha256_digest(self.config)
        self.manifest = image_manifest((self.config_digest, len(self.config)), [])

    def setup(self, server: Server) -> None:
        """One tiny manifest per repository, through the API (untimed, once per registry)."""
        with server.connect() as connection:
            push_bytes_like_docker(connection, SOURCE, self.config, self.config_digest)

        def create(connection: Connection, name: str) -> None:
            mount_blob(connection, name, self.config_digest, SOURCE)
            put_manifest(connection, name, "latest", self.manifest)

        over_connections(server, self.settings.setup_connections, self.names, create)

    def cases(self) -> list[Case]:
        label = (
            f"catalog walk, {len(self.names)} repositories, _catalog?n={self.settings.catalog_page} by Link"
        )
        return [Case("catalog", label, "s", False, self.walk, target=7.7)]

    def walk(self, server: Server) -> Callable[[], Outcome]:
        def timed() -> Outcome:
            names: list[str] = []
            pages = 0
            target: str | None = f"/v2/_catalog?n={self.settings.catalog_page}"
            with server.connect() as connection:
                started = time.perf_counter()
                while target is not None:
                    response = connection.request("GET", target).expect(200)
                    names += json.loads(response.body)["repositories"]
                    pages += 1
                    link = NEXT_LINK.search(response.header("Link"))
                    target = target_of(link.group(1)) if link else None
                elapsed = time.perf_counter() - started
            self.check(names)
            return Outcome(elapsed, {"pages": float(pages), "repositories": float(len(names))})

        return timed

    def check(self, names: list[str]) -> None:
        """Every repository exactly once and in lexical order (Distribution's order)."""
        if names != sorted(set(names)):
            raise HTTPError("catalog pages are out of order or repeat names")
        ours = [name for name in names if name.startswith("catalog/repo-")]
        if ours != self.names:
            raise HTTPError(f"catalog returned {len(ours)} of {len(self.names)} repositories")
