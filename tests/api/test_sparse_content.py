"""Sparse content, as the OCI conformance suite pushes it: an image manifest naming a layer that was
never pushed, and an index listing a manifest that was never pushed. Refused by default; accepted
and served back byte for byte with ``validation.disabled`` (or ``validation.enabled: false``), and,
for the index, with ``validation.manifests.indexes.platforms: none``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.registry import StartRegistry

from .client import RegistryClient, assert_error, assert_manifest_served, error_text
from .conftest import NewRepo, variant
from .content import Content, blob, image_config, image_manifest, index, platform

UNVALIDATED = {
    "disabled": {"validation": {"disabled": True}},
    "not-enabled": {"validation": {"enabled": False}},
}


@pytest.fixture(scope="module", params=list(UNVALIDATED))
def unvalidated(request: pytest.FixtureRequest, start_registry: StartRegistry) -> Iterator[RegistryClient]:
    config: dict[str, Any] = UNVALIDATED[request.param]
    with variant(start_registry, config) as (_, client):
        yield client


@pytest.fixture(scope="module")
def no_index_checks(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    config = {"validation": {"manifests": {"indexes": {"platforms": "none"}}}}
    with variant(start_registry, config) as (_, client):
        yield client


def _sparse_image(client: RegistryClient, repo: str) -> tuple[Content, Content]:
    """An image manifest whose config was pushed and whose one layer never was; and that layer."""
    config, missing_layer = image_config(), blob(4096)
    client.push_blob(repo, config)
    return image_manifest(config, [missing_layer]), missing_layer


def _sparse_index(client: RegistryClient, repo: str) -> tuple[Content, Content]:
    """An index listing one pushed image and one manifest never pushed; and that manifest."""
    present = client.push_image(repo)
    missing = image_manifest(image_config(architecture="arm64"), [blob(32)])
    listed = index(
        [
            present.manifest.descriptor(platform=platform("linux", "amd64")),
            missing.descriptor(platform=platform("linux", "arm64")),
        ]
    )
    return listed, missing


def _push_and_check(client: RegistryClient, repo: str, by: str, manifest: Content) -> None:
    """Push by tag or by digest, then HEAD, GET and the tags list see it as pushed."""
    reference = "sparse" if by == "tag" else manifest.digest
    client.push_manifest(repo, reference, manifest)
    assert_manifest_served(client, repo, reference, manifest)
    assert_manifest_served(client, repo, manifest.digest, manifest)
    assert ("sparse" in client.tags(repo)) == (by == "tag")


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_unvalidated_registry_stores_an_image_with_a_missing_layer(
    unvalidated: RegistryClient, new_repo: NewRepo, by: str
) -> None:
    repo = new_repo()
    manifest, missing_layer = _sparse_image(unvalidated, repo)
    _push_and_check(unvalidated, repo, by, manifest)
    assert unvalidated.blob_status(repo, missing_layer.digest) == 404


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_unvalidated_registry_stores_an_index_with_a_missing_child(
    unvalidated: RegistryClient, new_repo: NewRepo, by: str
) -> None:
    repo = new_repo()
    listed, missing = _sparse_index(unvalidated, repo)
    _push_and_check(unvalidated, repo, by, listed)
    assert unvalidated.manifest_status(repo, missing.digest) == 404


def test_unvalidated_registry_stores_an_image_with_nothing_pushed(
    unvalidated: RegistryClient, new_repo: NewRepo
) -> None:
    repo = new_repo()
    manifest = image_manifest(image_config(), [blob(10), blob(20)])
    _push_and_check(unvalidated, repo, "tag", manifest)


def test_unvalidated_registry_still_refuses_malformed_manifests(
    unvalidated: RegistryClient, new_repo: NewRepo
) -> None:
    repo = new_repo()
    layer = {**blob(10).descriptor(), "size": 2**64}
    response = unvalidated.put_manifest(repo, "v1", image_manifest(image_config(), [layer]))
    assert_error(response, 400, "MANIFEST_INVALID")
    assert unvalidated.manifest_status(repo, "v1") == 404


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_platforms_none_stores_the_sparse_index(
    no_index_checks: RegistryClient, new_repo: NewRepo, by: str
) -> None:
    repo = new_repo()
    listed, missing = _sparse_index(no_index_checks, repo)
    _push_and_check(no_index_checks, repo, by, listed)
    assert no_index_checks.manifest_status(repo, missing.digest) == 404


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_default_refuses_both_sparse_shapes(client: RegistryClient, new_repo: NewRepo, by: str) -> None:
    repo = new_repo()
    for manifest, missing in (_sparse_image(client, repo), _sparse_index(client, repo)):
        reference = "sparse" if by == "tag" else manifest.digest
        response = client.put_manifest(repo, reference, manifest)
        assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
        assert missing.digest in error_text(response)
        assert client.manifest_status(repo, reference) == 404
    assert "sparse" not in client.tags(repo)
