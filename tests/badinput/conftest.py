"""A registry whose storage root sits deep inside a sandbox directory, with known content in it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.badinput.rawhttp import RawResponse, raw_request
from tests.support.images import OCI_MANIFEST
from tests.support.pushing import image_manifest, push_blob, push_manifest, start_upload
from tests.support.registry import RunningRegistry, StartRegistry

REPOSITORY = "badinput/base"
OTHER_REPOSITORY = "badinput/other"
ESCAPE_MARKER = "dyescape"
"""Every path-climbing payload ends in this name, so an escape can be searched for by name."""


@dataclass
class Target:
    """The registry under attack and what it holds."""

    registry: RunningRegistry
    sandbox: Path
    config: bytes
    layer: bytes
    blob: str
    manifest: bytes
    manifest_digest: str

    repository: str = REPOSITORY

    def fresh_upload(self, repository: str = REPOSITORY) -> str:
        with httpx.Client(base_url=self.registry.url, timeout=30) as client:
            return start_upload(client, repository).rstrip("/").rsplit("/", 1)[1]

    def send(
        self,
        method: str,
        target: bytes,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
        chunked: bool = False,
    ) -> RawResponse:
        return raw_request(self.registry.port, method, target, headers, body, chunked)


@pytest.fixture(scope="module")
def target(start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory) -> Target:
    sandbox = tmp_path_factory.mktemp("badinput-sandbox")
    root = sandbox / "level1" / "level2" / "data"
    registry = start_registry(root=root)
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(2048)
    manifest = image_manifest(config, [layer])
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        push_blob(client, REPOSITORY, config)
        blob = push_blob(client, REPOSITORY, layer)
        manifest_digest = push_manifest(client, REPOSITORY, "latest", manifest, OCI_MANIFEST)
        push_blob(client, OTHER_REPOSITORY, config)
    return Target(registry, sandbox, config, layer, blob, manifest, manifest_digest)


def tree_snapshot(top: Path, skip: set[Path]) -> dict[str, tuple[bool, int, int]]:
    """Every path below ``top`` (not below ``skip``): is-dir, size and mtime."""
    snapshot = {}
    for directory, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if Path(directory, d) not in skip]
        for entry in [*dirs, *files]:
            path = Path(directory, entry)
            if path in skip:
                continue
            st = path.lstat()
            snapshot[str(path.relative_to(top))] = (path.is_dir(), st.st_size, st.st_mtime_ns)
    return snapshot
