"""First pushes to new repositories, as ``docker push`` makes them for an image whose layers the
registry already holds elsewhere: per repository a HEAD of the layer (404 there), a
cross-repository mount of the layer and of the config (201 each) and the manifest PUT, over 8
connections. This is what creating
repositories costs: their first links, manifest revision and tag."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

from bench.api import image_manifest, mount_blob, push_bytes_like_docker, put_manifest, sha256_digest
from bench.http import Connection, HTTPError
from bench.measure import Case, Outcome
from bench.parallel import over_connections
from bench.servers import Server
from bench.settings import Settings

SOURCE = "newrepo-source/image"
NAMESPACE = "newrepo"
"""Each repetition creates its repositories in a fresh directory, ``newrepo-<n>/``, taken out of
the store after it (untimed), so the catalog rows keep listing what they were built with."""
SET_ASIDE = "removed-repositories"
"""Where, in a server's work directory, a repetition's repositories go after it: moved there,
not deleted, and removed with the run's directory. Deleting them (some 30,000 inodes) slowed the
repetitions that followed within the minute: ext4 without a journal skips recently freed inodes
when it allocates one, and the next repetition's directories are allocated in the same block
groups, so each ``mkdir`` scanned past the freed inodes (``find_inode_bit``,
``recently_deleted``) and the row's times were bimodal for every registry."""


class NewRepositories:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layer = json.dumps({"new repositories": "layer"}).encode()
        self.layer_digest = sha256_digest(self.layer)
        self.config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        self.config_digest = sha256_digest(self.config)
        self.manifest = image_manifest(
            (self.config_digest, len(self.config)), [(self.layer_digest, len(self.layer))]
        )
        self.rounds = itertools.count()

    def setup(self, server: Server) -> None:
        with server.connect() as connection:
            push_bytes_like_docker(connection, SOURCE, self.config, self.config_digest)
            push_bytes_like_docker(connection, SOURCE, self.layer, self.layer_digest)
            put_manifest(connection, SOURCE, "latest", self.manifest)

    def cases(self) -> list[Case]:
        count = self.settings.new_repositories
        connections = self.settings.setup_connections
        label = f"create {count} repositories (HEAD, 2 mounts, manifest each), {connections} connections"
        return [Case("new-repositories", label, "s", False, self.create, target=None, peer_target=1.2)]

    def create(self, server: Server) -> Callable[[], Outcome]:
        namespace = f"{NAMESPACE}-{next(self.rounds)}"
        names = [f"{namespace}/repo-{i:05d}" for i in range(self.settings.new_repositories)]

        def first_push(connection: Connection, name: str) -> None:
            head = connection.request("HEAD", f"/v2/{name}/blobs/{self.layer_digest}")
            if head.status != 404:
                raise HTTPError(f"HEAD of a blob in the new repository {name} answered {head.status}")
            mount_blob(connection, name, self.layer_digest, SOURCE)
            mount_blob(connection, name, self.config_digest, SOURCE)
            put_manifest(connection, name, "latest", self.manifest)

        def timed() -> Outcome:
            started = time.perf_counter()
            over_connections(server, self.settings.setup_connections, names, first_push)
            elapsed = time.perf_counter() - started
            return Outcome(
                elapsed, {"repositories/s": len(names) / elapsed}, cleanup=self.remove(server, namespace)
            )

        return timed

    @staticmethod
    def remove(server: Server, namespace: str) -> Callable[[], None]:
        def cleanup() -> None:
            assert server.storage_root is not None
            aside = server.workdir / SET_ASIDE
            aside.mkdir(exist_ok=True)
            (server.storage_root / "docker/registry/v2/repositories" / namespace).rename(aside / namespace)

        return cleanup
