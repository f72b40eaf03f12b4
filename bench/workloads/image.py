"""An image of many small layers, pushed and pulled over 8 connections the way docker does.

Push per layer: HEAD (absent), POST, PATCH with the bytes, PUT ?digest=; then the config the same
way and the manifest by tag. Pull: manifest by tag, config, then every layer, each compared with
what was pushed. Each repetition pushes new content (a per-push marker at the start of every
layer) so no registry can answer from an earlier push.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from bench.api import (
    get_blob,
    get_blob_redirected,
    get_manifest,
    image_manifest,
    push_bytes_like_docker,
    put_manifest,
    sha256_digest,
)
from bench.http import Connection, HTTPError, Redirects
from bench.measure import Case, Outcome
from bench.parallel import over_connections
from bench.servers import Server
from bench.settings import Settings

REPOSITORY = "bench/image"


@dataclass
class Image:
    tag: str
    layers: list[tuple[str, bytes]]  # (digest, content)
    config: tuple[str, bytes]
    manifest: bytes
    manifest_digest: str

    @property
    def size(self) -> int:
        return sum(len(content) for _, content in self.layers) + len(self.config[1])


class ManyLayerImage:
    def __init__(self, settings: Settings, repository: str = REPOSITORY, redirects: bool = False) -> None:
        """``redirects``: also the pull row through each server's redirecting twin (S3 runs)."""
        self.settings = settings
        self.repository = repository
        self.redirects = redirects
        rng = random.Random(settings.layer_seed)
        self.sizes = [rng.randint(settings.layer_min, settings.layer_max) for _ in range(settings.layers)]
        self.content = rng.randbytes(sum(self.sizes))
        self.pushes = itertools.count()
        self.pushed: dict[str, Image] = {}  # per server: the image its last push stored

    def setup(self, server: Server) -> None:
        """Nothing to store ahead: every push brings its own content."""

    def cases(self) -> list[Case]:
        total = sum(self.sizes) / 1e6
        layers = f"{self.settings.layers} layers ({total:.0f} MB)"
        connections = f"{self.settings.image_connections} connections"
        cases = [
            Case("image-push", f"push image of {layers}, {connections}", "s", False, self.push, target=1.6),
            Case("image-pull", f"pull image of {layers}, {connections}", "s", False, self.pull, target=1.5),
        ]
        if self.redirects:
            label = f"pull image of {layers}, {connections}, via redirects to storage"
            pull = Case("image-pull-redirect", label, "s", False, self.pull_redirected, redirected=True)
            cases.append(pull)
        return cases

    def new_image(self) -> Image:
        number = next(self.pushes)
        marker = f"push-{number:08d}".encode()
        layers, offset = [], 0
        for size in self.sizes:
            content = marker + self.content[offset + len(marker) : offset + size]
            layers.append((sha256_digest(content), content))
            offset += size
        config = json.dumps({"architecture": "amd64", "os": "linux", "push": number}).encode()
        config_digest = sha256_digest(config)
        manifest = image_manifest(
            (config_digest, len(config)), [(digest, len(content)) for digest, content in layers]
        )
        return Image(f"push-{number}", layers, (config_digest, config), manifest, sha256_digest(manifest))

    def push(self, server: Server) -> Callable[[], Outcome]:
        image = self.new_image()

        def push_layer(connection: Connection, layer: tuple[str, bytes]) -> None:
            push_bytes_like_docker(connection, self.repository, layer[1], layer[0])

        def timed() -> Outcome:
            started = time.perf_counter()
            over_connections(server, self.settings.image_connections, image.layers, push_layer)
            with server.connect() as connection:
                push_bytes_like_docker(connection, self.repository, image.config[1], image.config[0])
                digest = put_manifest(connection, self.repository, image.tag, image.manifest)
            elapsed = time.perf_counter() - started
            if digest != image.manifest_digest:
                raise HTTPError("manifest digest changed on the way")
            self.pushed[server.name] = image
            return Outcome(elapsed, {"MB/s": image.size / elapsed / 1e6})

        return timed

    def pull(self, server: Server) -> Callable[[], Outcome]:
        image = self.pushed[server.name]

        def pull_layer(connection: Connection, layer: tuple[str, bytes]) -> None:
            get_blob(connection, self.repository, layer[0], layer[1])

        def timed() -> Outcome:
            started = time.perf_counter()
            with server.connect() as connection:
                manifest = get_manifest(connection, self.repository, image.tag, image.manifest_digest)
                listed = [layer["digest"] for layer in json.loads(manifest)["layers"]]
                get_blob(connection, self.repository, image.config[0], image.config[1])
            if listed != [digest for digest, _ in image.layers]:
                raise HTTPError("pulled manifest lists other layers")
            over_connections(server, self.settings.image_connections, image.layers, pull_layer)
            elapsed = time.perf_counter() - started
            return Outcome(elapsed, {"MB/s": image.size / elapsed / 1e6})

        return timed

    def pull_redirected(self, server: Server) -> Callable[[], Outcome]:
        """The pull, from the server's redirecting twin: every blob GET answers 307 and the client
        fetches it from storage over a connection of its own (one per client connection)."""
        image = self.pushed[server.name]
        assert server.redirecting is not None
        twin = server.redirecting
        local = threading.local()
        opened: list[Redirects] = []

        def storage() -> Redirects:
            if not hasattr(local, "redirects"):
                local.redirects = Redirects()
                opened.append(local.redirects)
            return cast("Redirects", local.redirects)

        def pull_layer(connection: Connection, layer: tuple[str, bytes]) -> None:
            get_blob_redirected(connection, storage(), self.repository, layer[0], layer[1])

        def timed() -> Outcome:
            try:
                started = time.perf_counter()
                with twin.connect() as connection:
                    manifest = get_manifest(connection, self.repository, image.tag, image.manifest_digest)
                    listed = [layer["digest"] for layer in json.loads(manifest)["layers"]]
                    get_blob_redirected(connection, storage(), self.repository, *image.config)
                if listed != [digest for digest, _ in image.layers]:
                    raise HTTPError("pulled manifest lists other layers")
                over_connections(twin, self.settings.image_connections, image.layers, pull_layer)
                elapsed = time.perf_counter() - started
            finally:
                for redirects in opened:
                    redirects.close()
            return Outcome(elapsed, {"MB/s": image.size / elapsed / 1e6})

        return timed
