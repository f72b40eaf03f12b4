"""sha256 and sha512 everywhere (blobs, uploads, manifests, mounts, referrers); any other digest
is refused with 400 DIGEST_INVALID."""

from __future__ import annotations

import pytest

from .client import (
    RegistryClient,
    assert_blob_content,
    assert_blob_created,
    assert_error,
    assert_location,
    assert_manifest_served,
    oci_tags,
)
from .conftest import NewRepo
from .content import EMPTY, OCI_INDEX, blob, digest_of, empty_descriptor, image_config, image_manifest

HEX64 = "a" * 64
BAD_DIGESTS = [
    "md5:" + "a" * 32,  # unknown algorithm
    "sha384:" + "a" * 96,  # not an algorithm the registry stores under
    "sha256:" + "a" * 63,  # too short
    "sha256:" + "a" * 65,  # too long
    "sha512:" + HEX64,  # sha256's length under sha512
    "sha256:" + "A" * 64,  # upper-case hex
    "SHA256:" + HEX64,  # upper-case algorithm
    "sha256:" + "g" * 64,  # not hex
    "sha256:",
]


def test_sha512_blob_in_one_post(client: RegistryClient, repo: str) -> None:
    content = blob(500, algorithm="sha512")
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": content.digest}, content=content.data
    )
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)
    head = client.head(f"/v2/{repo}/blobs/{content.digest}")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == content.digest
    assert head.headers["Content-Length"] == "500"
    ranged = client.get(f"/v2/{repo}/blobs/{content.digest}", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.content == content.data[100:200]
    assert ranged.headers["Content-Range"] == "bytes 100-199/500"


def test_sha512_digest_at_put_of_a_default_upload(client: RegistryClient, repo: str) -> None:
    content = blob(300, algorithm="sha512")
    location = client.start_upload(repo)
    client.patch(location, content=content.data[:100], headers={"Content-Range": "0-99"})
    response = client.put(location, params={"digest": content.digest}, content=content.data[100:])
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_sha256_digest_at_put_of_a_sha512_upload(client: RegistryClient, repo: str) -> None:
    content = blob(300)
    location = client.start_upload(repo, **{"digest-algorithm": "sha512"})
    response = client.put(location, params={"digest": content.digest}, content=content.data)
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_wrong_sha512_digest_is_rejected(client: RegistryClient, repo: str) -> None:
    content, claimed = blob(100), blob(100, algorithm="sha512")
    location = client.start_upload(repo, **{"digest-algorithm": "sha512"})
    response = client.put(location, params={"digest": claimed.digest}, content=content.data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.blob_status(repo, claimed.digest) == 404
    assert client.blob_status(repo, digest_of(content.data, "sha512")) == 404


def test_same_bytes_under_both_algorithms(client: RegistryClient, repo: str) -> None:
    sha256 = blob(80)
    sha512 = sha256.addressed_by("sha512")
    client.push_blobs(repo, sha256, sha512)
    assert_blob_content(client, repo, sha256)
    assert_blob_content(client, repo, sha512)
    assert client.delete(f"/v2/{repo}/blobs/{sha512.digest}").status_code == 202
    assert client.blob_status(repo, sha512.digest) == 404
    assert_blob_content(client, repo, sha256)


def test_sha512_manifest_pushed_by_digest(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, algorithm="sha512", layer_count=2)
    manifest = image.manifest
    assert manifest.digest.startswith("sha512:")
    response = client.put_manifest(repo, manifest.digest, manifest, params=[("tag", "v512"), ("tag", "also")])
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert_location(client, response, f"/v2/{repo}/manifests/{manifest.digest}")
    assert sorted(oci_tags(response)) == ["also", "v512"]
    assert_manifest_served(client, repo, manifest.digest, manifest)
    assert_manifest_served(client, repo, "v512", manifest)
    for layer in image.layers:
        assert layer.digest.startswith("sha512:")
        assert_blob_content(client, repo, layer)


def test_manifest_pushed_by_tag_is_addressed_by_sha256(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, algorithm="sha512")
    sha256 = image.manifest.addressed_by("sha256")
    response = client.put_manifest(repo, "v1", image.manifest)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256.digest
    assert_location(client, response, f"/v2/{repo}/manifests/{sha256.digest}")
    assert_manifest_served(client, repo, "v1", sha256)
    assert_manifest_served(client, repo, sha256.digest, sha256)


def test_sha512_manifest_deleted_by_digest(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, algorithm="sha512")
    client.push_manifest(repo, image.manifest.digest, image.manifest, params={"tag": "gone"})
    assert client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}").status_code == 202
    assert_error(client.get_manifest(repo, image.manifest.digest), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get_manifest(repo, "gone"), 404, "MANIFEST_UNKNOWN")


def test_sha512_digest_in_url_must_match(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, algorithm="sha512")
    other = image_manifest(image.config, image.layers, annotations={"other": "1"}, algorithm="sha512")
    response = client.put_manifest(repo, other.digest, image.manifest)
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.manifest_status(repo, other.digest) == 404


def test_sha512_mounts(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    source = new_repo()
    content = blob(100, algorithm="sha512")
    client.push_blob(source, content)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest, "from": source})
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)
    anonymous = new_repo()
    response = client.post(f"/v2/{anonymous}/blobs/uploads/", params={"mount": content.digest})
    assert_blob_created(client, response, anonymous, content.digest)
    unknown = blob(100, algorithm="sha512")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": unknown.digest, "from": source})
    assert response.status_code == 202


def test_sha512_referrers(client: RegistryClient, repo: str) -> None:
    subject = client.push_image(repo, algorithm="sha512").manifest
    client.push_blob(repo, EMPTY)
    referrer = image_manifest(
        empty_descriptor(),
        [empty_descriptor()],
        artifact_type="application/vnd.example.sig",
        subject=subject,
        algorithm="sha512",
    )
    response = client.push_manifest(repo, referrer.digest, referrer)
    assert response.headers["OCI-Subject"] == subject.digest
    listing = client.get(f"/v2/{repo}/referrers/{subject.digest}")
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    assert listing.json()["manifests"] == [referrer.descriptor(artifactType="application/vnd.example.sig")]
    assert client.delete(f"/v2/{repo}/manifests/{referrer.digest}").status_code == 202
    assert client.get(f"/v2/{repo}/referrers/{subject.digest}").json()["manifests"] == []


def test_sha512_descriptors_in_a_sha256_manifest(client: RegistryClient, repo: str) -> None:
    config = image_config(algorithm="sha512")
    layer = blob(40, algorithm="sha512")
    client.push_blobs(repo, config, layer)
    manifest = image_manifest(config, [layer])
    client.push_manifest(repo, "mixed", manifest)
    assert_manifest_served(client, repo, "mixed", manifest)


@pytest.mark.parametrize("digest", [*BAD_DIGESTS, "sha256", HEX64])
def test_bad_digest_in_blob_urls(client: RegistryClient, repo: str, digest: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_bad_digest_in_manifest_and_referrers_urls(client: RegistryClient, repo: str, digest: str) -> None:
    assert_error(client.get(f"/v2/{repo}/manifests/{digest}"), 400, "DIGEST_INVALID")
    assert_error(client.delete(f"/v2/{repo}/manifests/{digest}"), 400, "DIGEST_INVALID")
    config = image_config()
    client.push_blob(repo, config)
    assert_error(client.put_manifest(repo, digest, image_manifest(config)), 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/referrers/{digest}"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_bad_digest_in_upload_parameters(client: RegistryClient, repo: str, digest: str) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"data")
    assert_error(response, 400, "DIGEST_INVALID")
    location = client.start_upload(repo)
    client.patch(location, content=b"data")
    assert_error(client.put(location, params={"digest": digest}), 400, "DIGEST_INVALID")
    still = client.get(location)  # a malformed digest is refused before the upload is touched
    assert still.status_code == 204
    assert still.headers["Range"] == "0-3"
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest})
    assert_error(response, 400, "DIGEST_INVALID")
