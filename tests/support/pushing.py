"""Pushing over the plain HTTP API, one request at a time, so tests control every step."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import httpx

from .images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Image, ImageIndex, digest_of


def expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, (
        response.request.method,
        str(response.request.url),
        response.status_code,
        response.text[:500],
    )
    return response


def start_upload(client: httpx.Client, name: str) -> str:
    """POST a new upload session; its Location (absolute or relative)."""
    response = expect(client.post(f"/v2/{name}/blobs/uploads/"), 202)
    return response.headers["Location"]


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    """Monolithic push: one POST with ``?digest=``."""
    digest = digest_of(data)
    expect(client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data), 201)
    return digest


def push_blob_chunked(client: httpx.Client, name: str, data: bytes, chunk_size: int) -> str:
    """POST, one PATCH per chunk with ``Content-Range``, then PUT with the digest."""
    digest = digest_of(data)
    location = start_upload(client, name)
    for offset in range(0, len(data), chunk_size):
        chunk = data[offset : offset + chunk_size]
        response = expect(
            client.patch(
                location,
                content=chunk,
                headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
            ),
            202,
        )
        location = response.headers["Location"]
    expect(client.put(location, params={"digest": digest}), 201)
    return digest


def push_manifest(client: httpx.Client, name: str, reference: str, body: bytes, media_type: str) -> str:
    response = expect(
        client.put(f"/v2/{name}/manifests/{reference}", content=body, headers={"Content-Type": media_type}),
        201,
    )
    digest = digest_of(body)
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def image_manifest(config: bytes, layers: Sequence[bytes], **extra: Any) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        **extra,
    }
    return json.dumps(document).encode()


def index_manifest(manifests: Sequence[bytes]) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(OCI_MANIFEST, m, platform={"os": "linux", "architecture": f"arch{i}"})
            for i, m in enumerate(manifests)
        ],
    }
    return json.dumps(document).encode()


def push_image(client: httpx.Client, name: str, tag: str, layer_sizes: Sequence[int] = (1024,)) -> bytes:
    """Push fresh random layers and a config, then the manifest under ``tag``; the manifest bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    layers = [os.urandom(size) for size in layer_sizes]
    for blob in [config, *layers]:
        push_blob(client, name, blob)
    manifest = image_manifest(config, layers)
    push_manifest(client, name, tag, manifest, OCI_MANIFEST)
    return manifest


def push_content(client: httpx.Client, name: str, reference: str, content: Image | ImageIndex) -> str:
    """Every blob of ``content`` in one POST each, an index's images by digest, then its manifest
    under ``reference``; returns the manifest's digest."""
    images = content.images if isinstance(content, ImageIndex) else [content]
    for image in images:
        for blob in image.blobs:
            push_blob(client, name, blob.data)
        if image is not content:
            push_manifest(client, name, image.digest, image.manifest.data, image.manifest.media_type)
    return push_manifest(client, name, reference, content.manifest.data, content.manifest.media_type)


def error_codes(response: httpx.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]
