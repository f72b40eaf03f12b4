"""Pushing, pulling and deleting manifests (end-3, end-7, end-9) of every supported kind."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from .client import (
    RegistryClient,
    assert_blob_content,
    assert_empty_body,
    assert_error,
    assert_location,
    assert_manifest_served,
    error_text,
    oci_tags,
)
from .conftest import NewRepo
from .content import (
    CONFIG_TYPE_OF_IMAGE,
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY,
    LAYER_TYPE_OF_IMAGE,
    OCI_INDEX,
    OCI_MANIFEST,
    Content,
    blob,
    empty_descriptor,
    foreign_layer,
    image_config,
    image_manifest,
    index,
    platform,
    render,
)

MAX_MANIFEST = 4 * 1024 * 1024


def test_push_by_tag(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "v1")
    response = client.put_manifest(repo, "v1", image.manifest)
    assert response.status_code == 201
    assert_location(client, response, f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert response.headers["Docker-Content-Digest"] == image.manifest.digest
    assert_empty_body(response)
    assert "OCI-Subject" not in response.headers
    assert "OCI-Tag" not in response.headers
    assert_manifest_served(client, repo, "v1", image.manifest)
    assert_manifest_served(client, repo, image.manifest.digest, image.manifest)
    assert client.tags(repo) == ["v1"]


def test_push_by_digest(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo)
    response = client.put_manifest(repo, image.manifest.digest, image.manifest)
    assert response.status_code == 201
    assert_location(client, response, f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert response.headers["Docker-Content-Digest"] == image.manifest.digest
    assert_manifest_served(client, repo, image.manifest.digest, image.manifest)
    assert client.tags(repo) == []


def test_push_by_digest_with_tags(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo)
    wanted = ["1.2.3", "1.2", "1", "latest"]
    response = client.put_manifest(
        repo, image.manifest.digest, image.manifest, params=[("tag", t) for t in wanted]
    )
    assert response.status_code == 201, response.text
    assert sorted(oci_tags(response)) == sorted(wanted)
    assert response.headers["Docker-Content-Digest"] == image.manifest.digest
    assert_location(client, response, f"/v2/{repo}/manifests/{image.manifest.digest}")
    for tag in wanted:
        assert_manifest_served(client, repo, tag, image.manifest)
    assert client.tags(repo) == sorted(wanted)


def test_push_with_an_invalid_tag_parameter_stores_nothing(client: RegistryClient, repo: str) -> None:
    config = image_config()
    client.push_blob(repo, config)
    manifest = image_manifest(config)
    response = client.put_manifest(repo, manifest.digest, manifest, params=[("tag", "ok"), ("tag", "-bad")])
    assert_error(response, 400, "TAG_INVALID")
    assert client.manifest_status(repo, manifest.digest) == 404
    assert client.manifest_status(repo, "ok") == 404


def test_tag_parameters_need_a_push_by_digest(client: RegistryClient, repo: str) -> None:
    config = image_config()
    client.push_blob(repo, config)
    response = client.put_manifest(repo, "v1", image_manifest(config), params={"tag": "v2"})
    assert_error(response, 400, "TAG_INVALID")
    assert client.manifest_status(repo, "v1") == 404


def test_docker_schema2_manifest(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "docker", media_type=DOCKER_MANIFEST, layer_count=2)
    document = json.loads(image.manifest.data)
    assert document["config"]["mediaType"] == DOCKER_CONFIG
    assert {layer["mediaType"] for layer in document["layers"]} == {DOCKER_LAYER}
    assert_manifest_served(client, repo, "docker", image.manifest)


def test_oci_image_manifest(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "oci", layer_count=3, annotations={"org.example": "yes"})
    assert_manifest_served(client, repo, "oci", image.manifest)


def test_docker_manifest_list(client: RegistryClient, repo: str) -> None:
    amd64 = client.push_image(repo, media_type=DOCKER_MANIFEST, architecture="amd64")
    arm64 = client.push_image(repo, media_type=DOCKER_MANIFEST, architecture="arm64")
    manifest_list = index(
        [
            amd64.manifest.descriptor(platform=platform("linux", "amd64")),
            arm64.manifest.descriptor(platform=platform("linux", "arm64")),
        ],
        media_type=DOCKER_MANIFEST_LIST,
    )
    client.push_manifest(repo, "multi", manifest_list)
    assert_manifest_served(client, repo, "multi", manifest_list)
    assert_manifest_served(client, repo, manifest_list.digest, manifest_list)
    assert_manifest_served(client, repo, arm64.manifest.digest, arm64.manifest)


def test_oci_index(client: RegistryClient, repo: str) -> None:
    amd64 = client.push_image(repo, architecture="amd64")
    s390x = client.push_image(repo, architecture="s390x")
    image_index = index(
        [
            amd64.manifest.descriptor(platform=platform("linux", "amd64")),
            s390x.manifest.descriptor(platform=platform("linux", "s390x")),
        ],
        annotations={"org.opencontainers.image.ref.name": "multi"},
    )
    client.push_manifest(repo, "multi", image_index)
    assert_manifest_served(client, repo, "multi", image_index)


def test_nested_index(client: RegistryClient, repo: str) -> None:
    inner_images = [client.push_image(repo, architecture=arch) for arch in ("amd64", "arm64")]
    inner = index(
        [
            image.manifest.descriptor(platform=platform("linux", arch))
            for image, arch in zip(inner_images, ("amd64", "arm64"), strict=True)
        ]
    )
    client.push_manifest(repo, inner.digest, inner)
    windows = client.push_image(repo, os_name="windows")
    outer = index([inner.descriptor(), windows.manifest.descriptor(platform=platform("windows", "amd64"))])
    client.push_manifest(repo, "nested", outer)
    assert_manifest_served(client, repo, "nested", outer)
    assert_manifest_served(client, repo, inner.digest, inner)


def test_index_with_an_unknown_child_is_manifest_blob_unknown(client: RegistryClient, repo: str) -> None:
    known = client.push_image(repo)
    missing = image_manifest(image_config())
    image_index = index(
        [
            known.manifest.descriptor(platform=platform()),
            missing.descriptor(platform=platform("linux", "arm")),
        ]
    )
    response = client.put_manifest(repo, "multi", image_index)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert missing.digest in error_text(response)
    assert known.manifest.digest not in error_text(response)
    assert client.manifest_status(repo, "multi") == 404


def test_artifact_with_empty_config(client: RegistryClient, repo: str) -> None:
    payload = blob(40, "application/vnd.example.sbom.v1+json")
    client.push_blobs(repo, EMPTY, payload)
    artifact = image_manifest(
        empty_descriptor(),
        [payload],
        artifact_type="application/vnd.example.sbom.v1",
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    client.push_manifest(repo, "sbom", artifact)
    assert_manifest_served(client, repo, "sbom", artifact)
    document = json.loads(client.get_manifest(repo, "sbom").content)
    assert document["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert document["artifactType"] == "application/vnd.example.sbom.v1"


def test_artifact_with_only_the_empty_blob(client: RegistryClient, repo: str) -> None:
    client.push_blob(repo, EMPTY)
    artifact = image_manifest(
        empty_descriptor(), [empty_descriptor()], artifact_type="application/vnd.example.marker"
    )
    client.push_manifest(repo, artifact.digest, artifact)
    assert_manifest_served(client, repo, artifact.digest, artifact)


def test_subject_gives_oci_subject_header(client: RegistryClient, repo: str) -> None:
    subject = client.push_image(repo, "app")
    client.push_blob(repo, EMPTY)
    referrer = image_manifest(
        empty_descriptor(),
        [empty_descriptor()],
        artifact_type="application/vnd.example.sig",
        subject=subject.manifest,
    )
    response = client.push_manifest(repo, referrer.digest, referrer)
    assert response.headers["OCI-Subject"] == subject.manifest.digest
    assert_manifest_served(client, repo, referrer.digest, referrer)


def test_missing_subject_is_accepted(client: RegistryClient, repo: str) -> None:
    absent = image_manifest(image_config())
    client.push_blob(repo, EMPTY)
    referrer = image_manifest(
        empty_descriptor(), [empty_descriptor()], artifact_type="application/vnd.example.sig", subject=absent
    )
    response = client.push_manifest(repo, referrer.digest, referrer)
    assert response.headers["OCI-Subject"] == absent.digest
    assert client.manifest_status(repo, absent.digest) == 404
    assert_manifest_served(client, repo, referrer.digest, referrer)


def test_index_with_subject_gives_oci_subject_header(client: RegistryClient, repo: str) -> None:
    subject = client.push_image(repo)
    child = client.push_image(repo)
    image_index = index([child.manifest.descriptor(platform=platform())], subject=subject.manifest)
    response = client.push_manifest(repo, image_index.digest, image_index)
    assert response.headers["OCI-Subject"] == subject.manifest.digest


@pytest.mark.parametrize(
    ("media_type", "layer_type"),
    [
        (OCI_MANIFEST, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
        (OCI_MANIFEST, "application/vnd.oci.image.layer.nondistributable.v1.tar"),
        (DOCKER_MANIFEST, DOCKER_FOREIGN_LAYER),
    ],
)
def test_non_distributable_layer_needs_no_blob(
    client: RegistryClient, repo: str, media_type: str, layer_type: str
) -> None:
    config = image_config(media_type=CONFIG_TYPE_OF_IMAGE[media_type])
    local = blob(30, LAYER_TYPE_OF_IMAGE[media_type])
    client.push_blobs(repo, config, local)
    foreign = foreign_layer("https://mcr.example.com/layers/base.tar.gz", layer_type)
    manifest = image_manifest(config, [foreign, local], media_type=media_type)
    client.push_manifest(repo, "foreign", manifest)
    assert_manifest_served(client, repo, "foreign", manifest)
    assert client.blob_status(repo, foreign["digest"]) == 404


def test_distributable_layer_with_urls_still_needs_its_blob(client: RegistryClient, repo: str) -> None:
    config = image_config()
    client.push_blob(repo, config)
    layer = blob(30).descriptor(urls=["https://example.com/layer"])
    response = client.put_manifest(repo, "v1", image_manifest(config, [layer]))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert layer["digest"] in error_text(response)


def test_non_distributable_layer_url_must_be_http(client: RegistryClient, repo: str) -> None:
    config = image_config()
    client.push_blob(repo, config)
    for url in ["ftp://example.com/layer.tar", "https://example.com/layer.tar#part", "file:///etc/passwd"]:
        response = client.put_manifest(repo, "v1", image_manifest(config, [foreign_layer(url)]))
        assert_error(response, 400, "MANIFEST_INVALID")
    assert client.manifest_status(repo, "v1") == 404


def test_manifest_bytes_are_kept_exactly(client: RegistryClient, repo: str) -> None:
    config = image_config()
    layer = blob(20)
    client.push_blobs(repo, config, layer)
    # Keys out of the usual order, tabs, spaces around separators, escaped non-ASCII, a trailing newline.
    text = (
        '{ "layers" : [\n\t' + json.dumps(layer.descriptor()) + " ] ,\n"
        '  "annotations":{"org.example.caf\\u00e9":"cr\\u00e8me", "z":"1","a":"2"},\n'
        '"config":' + json.dumps(config.descriptor(), indent=3) + ","
        '   "mediaType":"application/vnd.oci.image.manifest.v1+json", "schemaVersion" :2 }\r\n\n'
    )
    manifest = Content(text.encode(), OCI_MANIFEST)
    client.push_manifest(repo, "exact", manifest)
    assert_manifest_served(client, repo, "exact", manifest)
    assert_manifest_served(client, repo, manifest.digest, manifest)


def test_odd_whitespace_in_an_index_is_kept(client: RegistryClient, repo: str) -> None:
    child = client.push_image(repo)
    image_index = index([child.manifest.descriptor(platform=platform())], style="odd")
    client.push_manifest(repo, "odd", image_index)
    assert_manifest_served(client, repo, "odd", image_index)


def test_content_type_parameters_are_ignored(client: RegistryClient, repo: str) -> None:
    config = image_config()
    client.push_blob(repo, config)
    manifest = image_manifest(config)
    response = client.put_manifest(repo, "v1", manifest, content_type=f"{OCI_MANIFEST}; charset=utf-8")
    assert response.status_code == 201, response.text
    assert_manifest_served(client, repo, "v1", manifest)


def test_manifest_without_media_type_field_is_served_as_pushed(client: RegistryClient, repo: str) -> None:
    config = image_config()
    client.push_blob(repo, config)
    manifest = image_manifest(config, declare_media_type=False)
    assert b"mediaType" in manifest.data  # the config descriptor has one, the manifest does not
    assert "mediaType" not in json.loads(manifest.data)
    client.push_manifest(repo, "v1", manifest)
    assert_manifest_served(client, repo, "v1", manifest)


def test_missing_blobs_are_listed_in_manifest_blob_unknown(client: RegistryClient, repo: str) -> None:
    config, present, absent = image_config(), blob(10), blob(10)
    client.push_blob(repo, present)
    manifest = image_manifest(config, [present, absent])
    response = client.put_manifest(repo, "v1", manifest)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    text = error_text(response)
    assert config.digest in text
    assert absent.digest in text
    assert present.digest not in text
    assert client.manifest_status(repo, "v1") == 404
    assert client.manifest_status(repo, manifest.digest) == 404


def test_blob_of_another_repository_is_unknown(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    config = image_config()
    client.push_blob(new_repo(), config)
    response = client.put_manifest(repo, "v1", image_manifest(config))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert config.digest in error_text(response)


def padded_manifest(config: Content, size: int) -> Content:
    """A valid manifest of exactly ``size`` bytes (padded in an annotation)."""

    def build(padding: int) -> bytes:
        return render(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [],
                "annotations": {"padding": "p" * padding},
            }
        )

    data = build(size - len(build(0)))
    assert len(data) == size
    return Content(data, OCI_MANIFEST)


@pytest.fixture
def pushed_config(client: RegistryClient, repo: str) -> Content:
    config = image_config()
    client.push_blob(repo, config)
    return config


def test_manifest_of_4_mib_is_accepted(client: RegistryClient, repo: str, pushed_config: Content) -> None:
    manifest = padded_manifest(pushed_config, MAX_MANIFEST)
    client.push_manifest(repo, "big", manifest)
    assert_manifest_served(client, repo, "big", manifest)


def test_manifest_over_4_mib_is_413(client: RegistryClient, repo: str, pushed_config: Content) -> None:
    manifest = padded_manifest(pushed_config, MAX_MANIFEST + 1)
    assert_error(client.put_manifest(repo, "big", manifest), 413, "SIZE_INVALID")
    assert client.manifest_status(repo, "big") == 404
    assert client.manifest_status(repo, manifest.digest) == 404


def test_manifest_over_4_mib_streamed_without_length_is_413(
    client: RegistryClient, repo: str, pushed_config: Content
) -> None:
    manifest = padded_manifest(pushed_config, MAX_MANIFEST + 64 * 1024)

    def body() -> Iterator[bytes]:
        for start in range(0, manifest.size, 64 * 1024):
            yield manifest.data[start : start + 64 * 1024]

    response = client.put(f"/v2/{repo}/manifests/big", content=body(), headers={"Content-Type": OCI_MANIFEST})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert_error(response, 413, "SIZE_INVALID")
    assert client.manifest_status(repo, "big") == 404


def raw_exchange(host: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection and read one response (status, headers, body)."""
    address, port = host.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        head, body = received.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def test_declared_length_over_4_mib_is_413_without_reading_the_body(
    client: RegistryClient, repo: str, pushed_config: Content
) -> None:
    """The body announced is never sent: the registry must answer from the header alone."""
    host = client.base_url.removeprefix("http://")
    manifest = image_manifest(pushed_config)
    request = (
        f"PUT /v2/{repo}/manifests/lying HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: {OCI_MANIFEST}\r\nContent-Length: {10 * 1024**3}\r\n\r\n"
    ).encode() + manifest.data
    status, headers, body = raw_exchange(host, request)
    assert status == 413
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"
    assert client.manifest_status(repo, "lying") == 404


def test_digest_in_url_must_match_the_body(client: RegistryClient, repo: str, pushed_config: Content) -> None:
    manifest = image_manifest(pushed_config)
    other = image_manifest(pushed_config, annotations={"other": "1"})
    response = client.put_manifest(repo, other.digest, manifest)
    error = assert_error(response, 400, "DIGEST_INVALID")
    assert other.digest in json.dumps(error)
    assert client.manifest_status(repo, manifest.digest) == 404
    assert client.manifest_status(repo, other.digest) == 404


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b'{"schemaVersion": 1, "mediaType": "' + OCI_MANIFEST.encode() + b'"}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": []}', OCI_MANIFEST),
    ],
)
def test_invalid_manifest_is_manifest_invalid(
    client: RegistryClient, repo: str, body: bytes, content_type: str
) -> None:
    response = client.put_manifest(repo, "bad", Content(body, content_type))
    assert_error(response, 400, "MANIFEST_INVALID")
    assert client.manifest_status(repo, "bad") == 404


def test_retagging_moves_the_tag(client: RegistryClient, repo: str) -> None:
    first = client.push_image(repo, "current")
    second = client.push_image(repo, "current")
    assert_manifest_served(client, repo, "current", second.manifest)
    assert_manifest_served(client, repo, first.manifest.digest, first.manifest)


def test_delete_tag_removes_only_the_tag(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "one")
    client.push_manifest(repo, "two", image.manifest)
    response = client.delete(f"/v2/{repo}/manifests/one")
    assert response.status_code == 202
    assert_empty_body(response)
    assert_error(client.get_manifest(repo, "one"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get_manifest(repo, "one", method="HEAD"), 404, "MANIFEST_UNKNOWN")
    assert_manifest_served(client, repo, image.manifest.digest, image.manifest)
    assert_manifest_served(client, repo, "two", image.manifest)
    assert client.tags(repo) == ["two"]
    assert_error(client.delete(f"/v2/{repo}/manifests/one"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_digest_removes_the_manifest_and_its_tags(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "a")
    client.push_manifest(repo, "b", image.manifest)
    kept = client.push_image(repo, "c")
    response = client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert response.status_code == 202
    assert_empty_body(response)
    for reference in [image.manifest.digest, "a", "b"]:
        assert_error(client.get_manifest(repo, reference), 404, "MANIFEST_UNKNOWN")
        assert_error(client.get_manifest(repo, reference, method="HEAD"), 404, "MANIFEST_UNKNOWN")
    assert client.tags(repo) == ["c"]
    assert_manifest_served(client, repo, "c", kept.manifest)
    assert client.blob_status(repo, image.config.digest) == 200  # blobs stay until garbage collection
    assert_error(client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_manifest_is_404(client: RegistryClient, repo: str) -> None:
    assert_error(client.delete(f"/v2/{repo}/manifests/nothing"), 404, "MANIFEST_UNKNOWN")
    digest = image_manifest(image_config()).digest
    assert_error(client.delete(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_push_again_after_delete(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "v1")
    assert client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}").status_code == 202
    client.push_manifest(repo, "v1", image.manifest)
    assert_manifest_served(client, repo, "v1", image.manifest)


def test_manifest_is_scoped_to_its_repository(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    image = client.push_image(repo, "v1")
    other = new_repo()
    assert_error(client.get_manifest(other, image.manifest.digest), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get_manifest(other, "v1"), 404, "MANIFEST_UNKNOWN")


def test_conditional_get_with_etag(client: RegistryClient, repo: str) -> None:
    image = client.push_image(repo, "v1")
    response = client.get_manifest(repo, "v1")
    assert response.headers["ETag"] == f'"{image.manifest.digest}"'
    again = client.get(f"/v2/{repo}/manifests/v1", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["Docker-Content-Digest"] == image.manifest.digest
    assert again.headers["ETag"] == response.headers["ETag"]
    assert "Content-Type" not in again.headers


MANIFEST_HEADERS = ("Content-Type", "Docker-Content-Digest", "ETag", "Content-Length")


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_head_answers_the_headers_get_does(client: RegistryClient, repo: str, by: str) -> None:
    image = client.push_image(repo, "v1")
    reference = "v1" if by == "tag" else image.manifest.digest
    got = client.get_manifest(repo, reference)
    head = client.get_manifest(repo, reference, method="HEAD")
    assert head.status_code == got.status_code == 200
    expected = {
        "Content-Type": image.manifest.media_type,
        "Docker-Content-Digest": image.manifest.digest,
        "ETag": f'"{image.manifest.digest}"',
        "Content-Length": str(image.manifest.size),
    }
    assert {name: got.headers.get(name) for name in MANIFEST_HEADERS} == expected
    assert {name: head.headers.get(name) for name in MANIFEST_HEADERS} == expected


def test_push_without_content_type_uses_the_declared_media_type(client: RegistryClient, repo: str) -> None:
    child = client.push_image(repo, media_type=DOCKER_MANIFEST)
    manifest_list = index([child.manifest.descriptor(platform=platform())], media_type=DOCKER_MANIFEST_LIST)
    response = client.put(f"/v2/{repo}/manifests/list", content=manifest_list.data)
    assert "Content-Type" not in response.request.headers
    assert response.status_code == 201, response.text
    assert_manifest_served(client, repo, "list", manifest_list)


def test_generic_content_type_and_no_media_type_field(client: RegistryClient, repo: str) -> None:
    child = client.push_image(repo)
    document = {"schemaVersion": 2, "manifests": [child.manifest.descriptor(platform=platform())]}
    image_index = Content(render(document), OCI_INDEX)
    response = client.put_manifest(repo, "idx", image_index, content_type="application/json")
    assert response.status_code == 201, response.text
    assert_manifest_served(client, repo, "idx", image_index)


@pytest.mark.parametrize("suffix", ["manifests", "blobs", "tags/list", "blobs/uploads", "referrers"])
def test_repository_names_may_contain_endpoint_words(client: RegistryClient, repo: str, suffix: str) -> None:
    name = f"{repo}/{suffix}"
    image = client.push_image(name, "v1")
    assert_manifest_served(client, name, "v1", image.manifest)
    assert_blob_content(client, name, image.layers[0])
    assert client.tags(name) == ["v1"]
    assert client.manifest_status(repo, "v1") == 404
    referrers = client.get(f"/v2/{name}/referrers/{image.manifest.digest}")
    assert referrers.status_code == 200
    assert referrers.json()["manifests"] == []
