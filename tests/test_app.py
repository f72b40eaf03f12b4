"""The registry assembled from parts by ``create_app``: a driver passed in, a wrapped blob
service."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp

from registry.app import create_app
from registry.config import load_config
from registry.references import Digest, RepositoryName
from registry.storage import BlobService, Wrappers, paths
from storage_drivers.inmemory import InMemoryDriver

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class CountingBlobs:
    """Wraps the registry's blob service and counts what passes through it."""

    def __init__(self, inner: BlobService) -> None:
        self.inner = inner
        self.opened: list[Digest] = []
        self.ingested: list[tuple[RepositoryName, Digest]] = []
        self.stats = 0

    async def size(self, digest: Digest) -> int | None:
        return await self.inner.size(digest)

    async def stat(self, name: RepositoryName, digest: Digest) -> int:
        self.stats += 1
        return await self.inner.stat(name, digest)

    async def open(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        self.opened.append(digest)
        return await self.inner.open(digest, offset, length)

    async def redirect_url(self, digest: Digest) -> str | None:
        return await self.inner.redirect_url(digest)

    async def mount(self, name: RepositoryName, source: RepositoryName | None, digest: Digest) -> int | None:
        return await self.inner.mount(name, source, digest)

    async def unlink(self, name: RepositoryName, digest: Digest) -> None:
        await self.inner.unlink(name, digest)

    async def ingest(self, name: RepositoryName, source_path: str, digest: Digest, size: int) -> None:
        self.ingested.append((name, digest))
        await self.inner.ingest(name, source_path, digest, size)


def _config(tmp_path: Path, extra: str = "") -> Any:
    config_file = tmp_path / "config.yml"
    config_file.write_text(f"version: 0.1\nstorage: {{inmemory: {{}}}}\n{extra}")
    return load_config(config_file, {})


def _client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _push_image(client: httpx.AsyncClient, name: str, layer: bytes, **auth: Any) -> str:
    config = b"{}"
    for blob in (layer, config):
        pushed = await client.post(f"/v2/{name}/blobs/uploads/?digest={_digest(blob)}", content=blob, **auth)
        assert pushed.status_code == 201, pushed.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config),
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": _digest(layer),
                "size": len(layer),
            }
        ],
    }
    put = await client.put(
        f"/v2/{name}/manifests/1.0",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": OCI_MANIFEST},
        **auth,
    )
    assert put.status_code == 201, put.text
    return _digest(layer)


async def test_a_wrapped_blob_service_serves_real_requests(tmp_path: Path) -> None:
    wrapped: list[CountingBlobs] = []

    def counting(inner: BlobService) -> BlobService:
        wrapped.append(CountingBlobs(inner))
        return wrapped[0]

    driver = InMemoryDriver()
    app = create_app(_config(tmp_path), driver=driver, wrappers=Wrappers(blobs=counting))
    layer = b"layer bytes " * 100
    async with _client(app) as client:
        digest = await _push_image(client, "team/app", layer)
        stats_after_push = wrapped[0].stats
        pulled = await client.get(f"/v2/team/app/blobs/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == layer
    [counter] = wrapped
    assert counter.opened == [Digest.parse(digest)]
    # Finished uploads become blobs through the wrapped service; the manifest push checks its
    # blobs through it too.
    name = RepositoryName("team/app")
    assert counter.ingested == [(name, Digest.parse(digest)), (name, Digest.parse(_digest(b"{}")))]
    assert stats_after_push == 2
    assert counter.stats == 3
    # The content is in the driver that was passed in.
    assert await driver.get_content(paths.blob_data(Digest.parse(digest))) == layer
