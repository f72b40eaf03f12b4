"""The referrers API (end-12): an OCI index of the manifests whose ``subject`` is a digest."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .client import Image, RegistryClient, assert_error
from .conftest import NewRepo
from .content import (
    EMPTY,
    OCI_INDEX,
    Content,
    blob,
    empty_descriptor,
    image_config,
    image_manifest,
    index,
    platform,
)

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE_CONFIG = "application/vnd.example.signature.config.v1+json"
BUNDLE = "application/vnd.example.bundle.v1"


def referrers(client: RegistryClient, repo: str, digest: str, **params: str) -> httpx.Response:
    return client.get(f"/v2/{repo}/referrers/{digest}", params=params)


def listed(response: httpx.Response, filtered: bool = False) -> list[dict[str, Any]]:
    """The descriptors of a referrers response, after checking it is a well-formed OCI index."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    if filtered:
        assert response.headers["OCI-Filters-Applied"] == "artifactType"
    else:
        assert "OCI-Filters-Applied" not in response.headers
    assert "Link" not in response.headers
    document = response.json()
    assert document["schemaVersion"] == 2
    assert document["mediaType"] == OCI_INDEX
    assert set(document) <= {"schemaVersion", "mediaType", "manifests", "annotations"}
    manifests: list[dict[str, Any]] = document["manifests"]
    return manifests


def by_digest(descriptors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["digest"]: d for d in descriptors}


def expected(
    manifest: Content, artifact_type: str | None, annotations: dict[str, str] | None
) -> dict[str, Any]:
    descriptor = manifest.descriptor()
    if artifact_type is not None:
        descriptor["artifactType"] = artifact_type
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


class Referrers:
    """A subject image and four referrers of it, of every kind the listing distinguishes."""

    def __init__(self, client: RegistryClient, repo: str, subject: Image) -> None:
        client.push_blob(repo, EMPTY)
        self.subject = subject.manifest
        sbom_payload = blob(30, "application/spdx+json")
        client.push_blob(repo, sbom_payload)
        sbom_annotations = {
            "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
            "org.example.format": "spdx",
        }
        self.sbom = image_manifest(
            empty_descriptor(),
            [sbom_payload],
            artifact_type=SBOM,
            subject=self.subject,
            annotations=sbom_annotations,
        )
        signature_config = image_config(media_type=SIGNATURE_CONFIG)
        client.push_blob(repo, signature_config)
        signature_annotations = {"org.example.signer": "ci"}
        self.signature = image_manifest(
            signature_config, [empty_descriptor()], subject=self.subject, annotations=signature_annotations
        )
        child = client.push_image(repo)
        index_annotations = {"org.example.kind": "attestations"}
        self.plain_index = index(
            [child.manifest.descriptor(platform=platform())],
            subject=self.subject,
            annotations=index_annotations,
        )
        self.typed_index = index([child.manifest.descriptor()], subject=self.subject, artifact_type=BUNDLE)
        for manifest in [self.sbom, self.signature, self.plain_index, self.typed_index]:
            response = client.push_manifest(repo, manifest.digest, manifest)
            assert response.headers["OCI-Subject"] == self.subject.digest
        self.expected = {
            self.sbom.digest: expected(self.sbom, SBOM, sbom_annotations),
            # No artifactType: the config's media type stands in for it.
            self.signature.digest: expected(self.signature, SIGNATURE_CONFIG, signature_annotations),
            # An index without artifactType is listed without one.
            self.plain_index.digest: expected(self.plain_index, None, index_annotations),
            self.typed_index.digest: expected(self.typed_index, BUNDLE, None),
        }


@pytest.fixture
def subject(client: RegistryClient, repo: str) -> Image:
    return client.push_image(repo, "app")


@pytest.fixture
def pushed(client: RegistryClient, repo: str, subject: Image) -> Referrers:
    return Referrers(client, repo, subject)


def test_no_referrers_is_an_empty_index(client: RegistryClient, repo: str, subject: Image) -> None:
    response = referrers(client, repo, subject.manifest.digest)
    assert listed(response) == []
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_unknown_subject_and_repository_give_an_empty_index(
    client: RegistryClient, new_repo: NewRepo
) -> None:
    digest = image_manifest(image_config()).digest
    assert listed(referrers(client, new_repo(), digest)) == []


def test_referrers_are_listed_with_artifact_type_and_annotations(
    client: RegistryClient, repo: str, pushed: Referrers
) -> None:
    descriptors = listed(referrers(client, repo, pushed.subject.digest))
    assert len(descriptors) == 4
    assert by_digest(descriptors) == pushed.expected
    assert "artifactType" not in by_digest(descriptors)[pushed.plain_index.digest]


def test_filter_by_artifact_type(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    for artifact_type, wanted in [
        (SBOM, pushed.sbom),
        (SIGNATURE_CONFIG, pushed.signature),
        (BUNDLE, pushed.typed_index),
    ]:
        descriptors = listed(
            referrers(client, repo, pushed.subject.digest, artifactType=artifact_type), filtered=True
        )
        assert descriptors == [pushed.expected[wanted.digest]]


def test_filter_matching_nothing_is_empty(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    response = referrers(client, repo, pushed.subject.digest, artifactType="application/vnd.example.none")
    assert listed(response, filtered=True) == []


def test_deleted_referrer_is_no_longer_listed(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    assert client.delete(f"/v2/{repo}/manifests/{pushed.sbom.digest}").status_code == 202
    descriptors = listed(referrers(client, repo, pushed.subject.digest))
    remaining = {k: v for k, v in pushed.expected.items() if k != pushed.sbom.digest}
    assert by_digest(descriptors) == remaining
    assert listed(referrers(client, repo, pushed.subject.digest, artifactType=SBOM), filtered=True) == []


def test_referrer_pushed_again_after_delete_is_listed_once(
    client: RegistryClient, repo: str, pushed: Referrers
) -> None:
    assert client.delete(f"/v2/{repo}/manifests/{pushed.sbom.digest}").status_code == 202
    client.push_manifest(repo, pushed.sbom.digest, pushed.sbom)
    client.push_manifest(repo, "sbom-tag", pushed.sbom)
    assert by_digest(listed(referrers(client, repo, pushed.subject.digest))) == pushed.expected
    assert len(listed(referrers(client, repo, pushed.subject.digest))) == 4


def test_referrers_outlive_their_subject(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    """Deleting the subject deletes no referrer: each is still a manifest whose subject is the digest."""
    assert client.delete(f"/v2/{repo}/manifests/{pushed.subject.digest}").status_code == 202
    assert client.manifest_status(repo, pushed.subject.digest) == 404
    assert by_digest(listed(referrers(client, repo, pushed.subject.digest))) == pushed.expected
    assert client.manifest_status(repo, pushed.sbom.digest) == 200
    assert client.delete(f"/v2/{repo}/manifests/{pushed.signature.digest}").status_code == 202
    assert len(listed(referrers(client, repo, pushed.subject.digest))) == 3


def test_referrer_pushed_before_its_subject(client: RegistryClient, repo: str) -> None:
    config = image_config()
    subject = image_manifest(config)
    client.push_blob(repo, EMPTY)
    referrer = image_manifest(empty_descriptor(), [empty_descriptor()], artifact_type=SBOM, subject=subject)
    client.push_manifest(repo, referrer.digest, referrer)
    assert listed(referrers(client, repo, subject.digest)) == [expected(referrer, SBOM, None)]
    client.push_blob(repo, config)
    client.push_manifest(repo, "app", subject)
    assert listed(referrers(client, repo, subject.digest)) == [expected(referrer, SBOM, None)]


def test_referrers_are_per_repository(
    client: RegistryClient, repo: str, pushed: Referrers, new_repo: NewRepo
) -> None:
    other = new_repo()
    assert listed(referrers(client, other, pushed.subject.digest)) == []


def test_referrers_of_a_referrer(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    signature_of_sbom = image_manifest(
        empty_descriptor(),
        [empty_descriptor()],
        artifact_type="application/vnd.example.sig",
        subject=pushed.sbom,
    )
    client.push_manifest(repo, signature_of_sbom.digest, signature_of_sbom)
    assert listed(referrers(client, repo, pushed.sbom.digest)) == [
        expected(signature_of_sbom, "application/vnd.example.sig", None)
    ]
    assert len(listed(referrers(client, repo, pushed.subject.digest))) == 4


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "A" * 64, "latest"])
def test_invalid_digest_is_400(client: RegistryClient, repo: str, digest: str) -> None:
    assert_error(referrers(client, repo, digest), 400, "DIGEST_INVALID")


def test_untagging_a_referrer_keeps_it_listed(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    client.push_manifest(repo, "sbom", pushed.sbom)
    assert client.delete(f"/v2/{repo}/manifests/sbom").status_code == 202
    assert by_digest(listed(referrers(client, repo, pushed.subject.digest))) == pushed.expected


def test_referrers_addressed_by_both_algorithms(client: RegistryClient, repo: str, pushed: Referrers) -> None:
    by_sha512 = image_manifest(
        empty_descriptor(),
        [empty_descriptor()],
        artifact_type="application/vnd.example.sig",
        subject=pushed.subject,
        algorithm="sha512",
    )
    client.push_manifest(repo, by_sha512.digest, by_sha512)
    descriptors = by_digest(listed(referrers(client, repo, pushed.subject.digest)))
    assert descriptors == {
        **pushed.expected,
        by_sha512.digest: expected(by_sha512, "application/vnd.example.sig", None),
    }
