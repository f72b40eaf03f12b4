"""A descriptor's ``size`` must be what the registry stores under its digest, and an int64 whatever
the blob: a client that trusts the manifest reads exactly that many bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .client import RegistryClient, assert_error, assert_manifest_served, error_text
from .content import OCI_MANIFEST, Content, blob, image_config, image_manifest, render


def _with_size(content: Content, size: Any) -> dict[str, Any]:
    return {**content.descriptor(), "size": size}


def _manifest(config: dict[str, Any], layers: list[dict[str, Any]]) -> Content:
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    return Content(render(document), OCI_MANIFEST)


WRONG_SIZES: dict[str, Callable[[int], int]] = {
    "zero": lambda _: 0,
    "one": lambda _: 1,
    "one-less": lambda actual: actual - 1,
    "one-more": lambda actual: actual + 1,
    "int64-max": lambda _: 2**63 - 1,
}
OUT_OF_RANGE = [-1, 2**63, 2**64, 1.5, 48.0, "48", True, None, 1e400]


@pytest.mark.parametrize("wrong", WRONG_SIZES)
@pytest.mark.parametrize("which", ["config", "layer"])
def test_size_differing_from_the_stored_blob_is_refused(
    client: RegistryClient, repo: str, which: str, wrong: str
) -> None:
    config, layer = image_config(), blob(48)
    client.push_blobs(repo, config, layer)
    target = config if which == "config" else layer
    size = WRONG_SIZES[wrong](target.size)
    descriptors = [
        _with_size(item, size) if item is target else item.descriptor() for item in (config, layer)
    ]
    manifest = _manifest(descriptors[0], descriptors[1:])
    response = client.put_manifest(repo, "v1", manifest)
    error = assert_error(response, 400, "MANIFEST_INVALID")
    expected = {"mediaType": target.media_type, "digest": target.digest, "size": size}
    assert error["detail"]["descriptor"] == expected
    assert client.manifest_status(repo, "v1") == 404
    assert client.manifest_status(repo, manifest.digest) == 404


@pytest.mark.parametrize("size", OUT_OF_RANGE, ids=repr)
def test_size_that_is_no_int64_is_refused_whatever_the_blob(
    client: RegistryClient, repo: str, size: object
) -> None:
    config, layer = image_config(), blob(48)
    client.push_blobs(repo, config, layer)
    body = render(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [_with_size(layer, size)],
        }
    ).replace(b"Infinity", b"1e400")
    response = client.put_manifest(repo, "v1", Content(body, OCI_MANIFEST))
    assert_error(response, 400, "MANIFEST_INVALID")
    assert "size" in error_text(response)
    assert client.manifest_status(repo, "v1") == 404


def test_exact_sizes_are_accepted(client: RegistryClient, repo: str) -> None:
    config, layers = image_config(), [blob(0), blob(48), blob(4099)]
    client.push_blobs(repo, config, *layers)
    manifest = image_manifest(config, layers)
    client.push_manifest(repo, "v1", manifest)
    assert_manifest_served(client, repo, "v1", manifest)
