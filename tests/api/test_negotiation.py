"""Content negotiation on manifest pulls: the ``Accept`` header decides what may be served."""

from __future__ import annotations

import httpx
import pytest

from .client import RegistryClient, assert_error
from .content import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    IMAGE_TYPE_OF_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Content,
    index,
    platform,
)


def pull(
    client: RegistryClient, repo: str, reference: str, accept: list[str] | None, method: str = "GET"
) -> httpx.Response:
    """Pull with one ``Accept`` header line per item of ``accept`` (None: no Accept at all)."""
    request = client.http.build_request(method, f"/v2/{repo}/manifests/{reference}")
    del request.headers["Accept"]
    request.headers.update([("Accept", value) for value in accept or []])
    assert request.headers.get_list("Accept") == list(accept or [])
    return client.http.send(request)


def assert_serves(response: httpx.Response, manifest: Content) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == manifest.media_type
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["Content-Length"] == str(manifest.size)
    if response.request.method == "GET":
        assert response.content == manifest.data


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_oci_only_accept_on_a_docker_manifest_is_404(client: RegistryClient, repo: str, method: str) -> None:
    client.push_image(repo, "v1", media_type=DOCKER_MANIFEST)
    response = pull(client, repo, "v1", [OCI_MANIFEST], method)
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    response = pull(client, repo, "v1", [f"{OCI_MANIFEST}, {OCI_INDEX}"], method)
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_docker_only_accept_on_an_oci_manifest_is_404(client: RegistryClient, repo: str) -> None:
    client.push_image(repo, "v1", media_type=OCI_MANIFEST)
    assert_error(pull(client, repo, "v1", [DOCKER_MANIFEST]), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize(
    "accept",
    [
        None,
        ["*/*"],
        [DOCKER_MANIFEST],
        [f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"],
        [OCI_MANIFEST, DOCKER_MANIFEST],  # two header lines
        [f"{OCI_MANIFEST};q=0.5, {DOCKER_MANIFEST};q=0.9"],
        [f"{DOCKER_MANIFEST_LIST}, {DOCKER_MANIFEST}"],
    ],
    ids=["none", "any", "docker", "one-line", "two-lines", "q-values", "list-and-image"],
)
def test_accepted_docker_manifest_is_served_as_pushed(
    client: RegistryClient, repo: str, accept: list[str] | None
) -> None:
    image = client.push_image(repo, "v1", media_type=DOCKER_MANIFEST)
    assert_serves(pull(client, repo, "v1", accept), image.manifest)
    assert_serves(pull(client, repo, "v1", accept, "HEAD"), image.manifest)


def push_list(
    client: RegistryClient, repo: str, list_type: str, architectures: list[str]
) -> dict[str, Content]:
    """Push one image per architecture and a list of them tagged ``multi``; by architecture, with
    the list under ``list``."""
    image_type = IMAGE_TYPE_OF_LIST[list_type]
    images = {
        arch: client.push_image(repo, media_type=image_type, architecture=arch).manifest
        for arch in architectures
    }
    manifest_list = index(
        [images[arch].descriptor(platform=platform("linux", arch)) for arch in architectures],
        media_type=list_type,
    )
    client.push_manifest(repo, "multi", manifest_list)
    return {**images, "list": manifest_list}


@pytest.mark.parametrize("list_type", [DOCKER_MANIFEST_LIST, OCI_INDEX])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_list_pulled_with_only_image_types_serves_linux_amd64(
    client: RegistryClient, repo: str, list_type: str, method: str
) -> None:
    pushed = push_list(client, repo, list_type, ["arm64", "amd64", "ppc64le"])
    response = pull(client, repo, "multi", [IMAGE_TYPE_OF_LIST[list_type]], method)
    assert_serves(response, pushed["amd64"])


@pytest.mark.parametrize("list_type", [DOCKER_MANIFEST_LIST, OCI_INDEX])
def test_list_pulled_accepting_lists_serves_the_list(
    client: RegistryClient, repo: str, list_type: str
) -> None:
    pushed = push_list(client, repo, list_type, ["arm64", "amd64"])
    assert_serves(pull(client, repo, "multi", [list_type]), pushed["list"])
    assert_serves(pull(client, repo, "multi", [IMAGE_TYPE_OF_LIST[list_type], list_type]), pushed["list"])
    assert_serves(pull(client, repo, "multi", None), pushed["list"])


def test_list_without_linux_amd64_and_image_only_accept_is_404(client: RegistryClient, repo: str) -> None:
    push_list(client, repo, OCI_INDEX, ["arm64", "riscv64"])
    assert_error(pull(client, repo, "multi", [OCI_MANIFEST]), 404, "MANIFEST_UNKNOWN")


def test_list_whose_amd64_child_is_not_acceptable_is_404(client: RegistryClient, repo: str) -> None:
    push_list(client, repo, OCI_INDEX, ["amd64"])
    assert_error(pull(client, repo, "multi", [DOCKER_MANIFEST]), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("list_type", [DOCKER_MANIFEST_LIST, OCI_INDEX])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_list_pulled_by_digest_is_never_swapped_for_a_child(
    client: RegistryClient, repo: str, list_type: str, method: str
) -> None:
    """A digest names exact content: the linux/amd64 substitution is for tags only (as in
    Distribution), so a client that cannot take the list is told it is not there."""
    pushed = push_list(client, repo, list_type, ["arm64", "amd64"])
    response = pull(client, repo, pushed["list"].digest, [IMAGE_TYPE_OF_LIST[list_type]], method)
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    assert "Docker-Content-Digest" not in response.headers
