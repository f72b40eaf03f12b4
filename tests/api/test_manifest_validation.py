"""``validation.manifests``: the URL policy for non-distributable layers and which children of an
index must exist (``indexes.platforms`` all / none / list)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry import StartRegistry

from .client import RegistryClient, assert_error, assert_manifest_served, error_text
from .conftest import NewRepo, variant
from .content import (
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST,
    foreign_layer,
    image_config,
    image_manifest,
    index,
    platform,
)

ALLOWED = "https://layers.example.com/"
URL_POLICY = {
    "allow": [r"^https://layers\.example\.com/"],
    "deny": [r"^https://layers\.example\.com/private/"],
}


@pytest.fixture(scope="module")
def url_policy(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    with variant(start_registry, {"validation": {"manifests": {"urls": URL_POLICY}}}) as (_, client):
        yield client


@pytest.fixture(scope="module")
def no_index_checks(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    config = {"validation": {"manifests": {"indexes": {"platforms": "none"}}}}
    with variant(start_registry, config) as (_, client):
        yield client


@pytest.fixture(scope="module")
def listed_platforms(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    indexes = {"platforms": "list", "platformlist": [{"os": "linux", "architecture": "amd64"}]}
    with variant(start_registry, {"validation": {"manifests": {"indexes": indexes}}}) as (_, client):
        yield client


@pytest.mark.parametrize("url", [f"{ALLOWED}base.tar.gz", f"{ALLOWED}public/private/base.tar.gz"])
def test_url_policy_accepts(url_policy: RegistryClient, new_repo: NewRepo, url: str) -> None:
    repo = new_repo()
    config = image_config()
    url_policy.push_blob(repo, config)
    manifest = image_manifest(config, [foreign_layer(url)])
    url_policy.push_manifest(repo, "v1", manifest)
    assert_manifest_served(url_policy, repo, "v1", manifest)


@pytest.mark.parametrize(
    "url",
    [
        f"{ALLOWED}private/base.tar.gz",  # denied
        "https://elsewhere.example.com/base.tar.gz",  # not allowed
        "http://layers.example.com/base.tar.gz",  # the allowed prefix is https
        "https://evil.example/?https://layers.example.com/",  # allowed text, but not at the start
    ],
)
def test_url_policy_refuses(url_policy: RegistryClient, new_repo: NewRepo, url: str) -> None:
    repo = new_repo()
    config = image_config()
    url_policy.push_blob(repo, config)
    response = url_policy.put_manifest(repo, "v1", image_manifest(config, [foreign_layer(url)]))
    assert_error(response, 400, "MANIFEST_INVALID")
    assert url in error_text(response)
    assert url_policy.manifest_status(repo, "v1") == 404


def test_url_policy_applies_to_docker_foreign_layers(url_policy: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    config = image_config(media_type="application/vnd.docker.container.image.v1+json")
    url_policy.push_blob(repo, config)
    denied = foreign_layer(f"{ALLOWED}private/layer", DOCKER_FOREIGN_LAYER)
    response = url_policy.put_manifest(
        repo, "v1", image_manifest(config, [denied], media_type=DOCKER_MANIFEST)
    )
    assert_error(response, 400, "MANIFEST_INVALID")
    allowed = foreign_layer(f"{ALLOWED}layer", DOCKER_FOREIGN_LAYER)
    manifest = image_manifest(config, [allowed], media_type=DOCKER_MANIFEST)
    url_policy.push_manifest(repo, "v1", manifest)
    assert_manifest_served(url_policy, repo, "v1", manifest)


def test_default_policy_requires_every_child(client: RegistryClient, repo: str) -> None:
    present = client.push_image(repo)
    missing = image_manifest(image_config(architecture="arm64"))
    image_index = index(
        [
            present.manifest.descriptor(platform=platform()),
            missing.descriptor(platform=platform("linux", "arm64")),
        ]
    )
    response = client.put_manifest(repo, "multi", image_index)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing.digest in error_text(response)


def test_platforms_none_accepts_missing_children(no_index_checks: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    missing = [image_manifest(image_config(architecture=arch)) for arch in ("amd64", "arm64")]
    image_index = index(
        [
            missing[0].descriptor(platform=platform("linux", "amd64")),
            missing[1].descriptor(platform=platform("linux", "arm64")),
        ]
    )
    no_index_checks.push_manifest(repo, "multi", image_index)
    assert_manifest_served(no_index_checks, repo, "multi", image_index)
    assert no_index_checks.manifest_status(repo, missing[0].digest) == 404


def test_platforms_none_still_checks_image_blobs(no_index_checks: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    config = image_config()
    response = no_index_checks.put_manifest(repo, "v1", image_manifest(config))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert config.digest in error_text(response)


def test_platform_list_requires_only_listed_platforms(
    listed_platforms: RegistryClient, new_repo: NewRepo
) -> None:
    repo = new_repo()
    amd64 = listed_platforms.push_image(repo, architecture="amd64")
    arm64 = image_manifest(image_config(architecture="arm64"))
    image_index = index(
        [
            amd64.manifest.descriptor(platform=platform("linux", "amd64")),
            arm64.descriptor(platform=platform("linux", "arm64")),
        ]
    )
    listed_platforms.push_manifest(repo, "multi", image_index)
    assert_manifest_served(listed_platforms, repo, "multi", image_index)


def test_platform_list_refuses_a_missing_listed_platform(
    listed_platforms: RegistryClient, new_repo: NewRepo
) -> None:
    repo = new_repo()
    arm64 = listed_platforms.push_image(repo, architecture="arm64")
    amd64 = image_manifest(image_config(architecture="amd64"))
    image_index = index(
        [
            arm64.manifest.descriptor(platform=platform("linux", "arm64")),
            amd64.descriptor(platform=platform("linux", "amd64")),
        ]
    )
    response = listed_platforms.put_manifest(repo, "multi", image_index)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert amd64.digest in error_text(response)
    assert arm64.manifest.digest not in error_text(response)
    assert listed_platforms.manifest_status(repo, "multi") == 404
