"""Manifest parsing: media type decisions, what a manifest references, and what is refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.references import Digest
from registry.storage.manifest_format import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    check_urls,
    media_type_of,
    parse_manifest,
    stored_media_type,
)

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
NON_DISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def _digest(n: int, algorithm: str = "sha256") -> str:
    return f"{algorithm}:" + f"{n:02x}" * (32 if algorithm == "sha256" else 64)


def _descriptor(media_type: str, n: int, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(n), "size": size, **extra}


def _image(media_type: str | None = OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "config": _descriptor(OCI_CONFIG, 1),
        "layers": [_descriptor(OCI_LAYER, 2), _descriptor(OCI_LAYER, 3)],
        **extra,
    }
    if media_type is not None:
        document["mediaType"] = media_type
    return document


def _index_document(media_type: str | None = OCI_INDEX, **extra: Any) -> dict[str, Any]:
    platform = {"os": "linux", "architecture": "amd64"}
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [_descriptor(OCI_MANIFEST, 4, platform=platform), _descriptor(OCI_MANIFEST, 5)],
        **extra,
    }
    if media_type is not None:
        document["mediaType"] = media_type
    return document


def _body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _invalid(body: bytes, content_type: str | None = OCI_MANIFEST) -> str:
    with pytest.raises(RegistryError) as raised:
        parse_manifest(body, content_type)
    assert raised.value.code is ErrorCode.MANIFEST_INVALID
    return str(raised.value.detail["reason"])


def test_oci_image_manifest_references_config_and_layers() -> None:
    manifest = parse_manifest(_body(_image()), OCI_MANIFEST)
    assert manifest.media_type == OCI_MANIFEST
    assert [str(d.digest) for d in manifest.blobs] == [_digest(1), _digest(2), _digest(3)]
    assert [d.media_type for d in manifest.blobs] == [OCI_CONFIG, OCI_LAYER, OCI_LAYER]
    assert manifest.children == ()
    assert manifest.subject is None
    assert manifest.artifact_type == OCI_CONFIG  # the config's type stands in for artifactType


def test_docker_schema2_manifest() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": _descriptor(DOCKER_CONFIG, 1),
        "layers": [_descriptor(DOCKER_LAYER, 2)],
    }
    for content_type in (DOCKER_MANIFEST, None, "application/json"):
        manifest = parse_manifest(_body(document), content_type)
        assert manifest.media_type == DOCKER_MANIFEST
        assert len(manifest.blobs) == 2


def test_indexes_list_children() -> None:
    manifest = parse_manifest(_body(_index_document()), OCI_INDEX)
    assert manifest.media_type == OCI_INDEX
    assert [str(c.digest) for c in manifest.children] == [_digest(4), _digest(5)]
    assert manifest.children[0].platform == {"os": "linux", "architecture": "amd64"}
    assert manifest.blobs == ()
    docker_list = parse_manifest(_body(_index_document(DOCKER_MANIFEST_LIST)), DOCKER_MANIFEST_LIST)
    assert docker_list.media_type == DOCKER_MANIFEST_LIST


def test_media_type_from_the_body_when_the_header_is_generic() -> None:
    for header in (
        None,
        "",
        "application/json",
        "application/octet-stream",
        "application/json; charset=utf-8",
    ):
        assert parse_manifest(_body(_image()), header).media_type == OCI_MANIFEST
        assert parse_manifest(_body(_index_document()), header).media_type == OCI_INDEX
        assert parse_manifest(_body(_image(None)), header).media_type == OCI_MANIFEST
        assert parse_manifest(_body(_index_document(None)), header).media_type == OCI_INDEX


def test_oci_types_need_no_media_type_field() -> None:
    assert parse_manifest(_body(_image(None)), OCI_MANIFEST).media_type == OCI_MANIFEST
    assert parse_manifest(_body(_index_document(None)), OCI_INDEX).media_type == OCI_INDEX
    assert parse_manifest(_body(_image(None)), f"{OCI_MANIFEST}; charset=utf-8").media_type == OCI_MANIFEST


def test_docker_types_must_declare_their_media_type() -> None:
    assert "declare" in _invalid(_body(_image(None)), DOCKER_MANIFEST)
    assert "declare" in _invalid(_body(_index_document(None)), DOCKER_MANIFEST_LIST)


@pytest.mark.parametrize(
    ("body_type", "header"),
    [
        (OCI_MANIFEST, DOCKER_MANIFEST),
        (OCI_INDEX, OCI_MANIFEST),
        (DOCKER_MANIFEST, OCI_MANIFEST),
        (OCI_MANIFEST, OCI_INDEX),
    ],
)
def test_media_type_field_must_agree_with_content_type(body_type: str, header: str) -> None:
    document = _index_document(body_type) if body_type in {OCI_INDEX} else _image(body_type)
    assert "does not match" in _invalid(_body(document), header)


@pytest.mark.parametrize(
    "header",
    [
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "text/html",
        OCI_CONFIG,
        "application/vnd.example.unknown+json",
    ],
)
def test_unsupported_content_types(header: str) -> None:
    _invalid(_body(_image(None)), header)


def test_schema1_body_is_refused() -> None:
    document = {"schemaVersion": 1, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}
    assert "schema 1" in _invalid(_body(document), None)


def test_artifact_manifest() -> None:
    document = _image(
        artifactType="application/vnd.example.sbom",
        config=_descriptor(EMPTY_CONFIG, 9, size=2),
        layers=[_descriptor("application/vnd.example.sbom.json", 8)],
        subject=_descriptor(OCI_MANIFEST, 7),
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    manifest = parse_manifest(_body(document), OCI_MANIFEST)
    assert manifest.artifact_type == "application/vnd.example.sbom"
    assert manifest.subject is not None
    assert manifest.subject.digest == Digest.parse(_digest(7))
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert parse_manifest(_body(_image(layers=[])), OCI_MANIFEST).blobs[0].media_type == OCI_CONFIG


def test_index_with_subject_and_artifact_type() -> None:
    document = _index_document(subject=_descriptor(OCI_MANIFEST, 7), artifactType="application/vnd.example")
    manifest = parse_manifest(_body(document), OCI_INDEX)
    assert manifest.subject is not None
    assert manifest.artifact_type == "application/vnd.example"


def test_non_distributable_layers_with_urls_are_not_required_blobs() -> None:
    urls = ["https://example.com/layer.tar.gz"]
    document = _image(
        layers=[
            _descriptor(NON_DISTRIBUTABLE, 2, urls=urls),
            _descriptor(FOREIGN, 3, urls=urls),
            _descriptor(OCI_LAYER, 4),
        ]
    )
    manifest = parse_manifest(_body(document), OCI_MANIFEST)
    assert [str(d.digest) for d in manifest.blobs] == [_digest(1), _digest(4)]
    assert manifest.foreign_urls == (urls[0], urls[0])
    without_urls = parse_manifest(_body(_image(layers=[_descriptor(NON_DISTRIBUTABLE, 2)])), OCI_MANIFEST)
    assert [str(d.digest) for d in without_urls.blobs] == [_digest(1), _digest(2)]


def test_sha512_descriptors() -> None:
    document = _image(config={"mediaType": OCI_CONFIG, "digest": _digest(1, "sha512"), "size": 3})
    assert parse_manifest(_body(document), OCI_MANIFEST).blobs[0].digest.algorithm == "sha512"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "JSON"),
        (b"{", "JSON"),
        (b"[]", "object"),
        (b"null", "object"),
        (b'"x"', "object"),
        (b'{"schemaVersion": 2, "schemaVersion": 2}', "duplicate"),
        (b'{"schemaVersion": NaN}', "JSON"),
        (b'{"schemaVersion": Infinity}', "JSON"),
        (b'{"schemaVersion": 2, "x": "\xff"}', "UTF-8"),
        (json.dumps({"schemaVersion": 2}).encode("utf-16"), "UTF-8"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_malformed_json(body: bytes, reason: str) -> None:
    assert reason in _invalid(body, None)


def test_duplicate_keys_inside_descriptors() -> None:
    body = _body(_image()).replace(
        f'"digest": "{_digest(2)}"'.encode(), f'"digest": "{_digest(9)}", "digest": "{_digest(2)}"'.encode()
    )
    assert "duplicate" in _invalid(body)


@pytest.mark.parametrize("version", [1, 3, "2", 2.0, True, None, [2]])
def test_schema_version_must_be_the_integer_2(version: object) -> None:
    assert "schemaVersion" in _invalid(_body(_image(schemaVersion=version)))


@pytest.mark.parametrize(
    "changes",
    [
        {"config": None},
        {"config": []},
        {"config": "sha256:" + "0" * 64},
        {"layers": None},
        {"layers": {}},
        {"layers": [5]},
        {"layers": [None]},
        {"manifests": []},
        {"mediaType": 5},
        {"artifactType": 5},
        {"annotations": []},
        {"annotations": {"a": 1}},
        {"subject": "x"},
        {"subject": {}},
    ],
    ids=lambda changes: "-".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_wrong_types_in_image_manifests(changes: dict[str, Any]) -> None:
    document = {k: v for k, v in {**_image(), **changes}.items() if v is not None}
    _invalid(_body(document))


@pytest.mark.parametrize(
    "changes",
    [
        {"mediaType": None},
        {"mediaType": 5},
        {"mediaType": ""},
        {"mediaType": "not a type"},
        {"mediaType": "a/b/c"},
        {"digest": None},
        {"digest": 5},
        {"digest": "sha256:../../etc"},
        {"digest": "md5:" + "0" * 32},
        {"size": None},
        {"size": "10"},
        {"size": -1},
        {"size": 1.5},
        {"size": True},
        {"urls": "https://example.com"},
        {"urls": [1]},
        {"platform": "linux"},
        {"annotations": {"a": 1}},
    ],
    ids=lambda changes: "-".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_wrong_types_in_descriptors(changes: dict[str, Any]) -> None:
    layer = {k: v for k, v in {**_descriptor(OCI_LAYER, 2), **changes}.items() if v is not None}
    _invalid(_body(_image(layers=[layer])))
    config = {k: v for k, v in {**_descriptor(OCI_CONFIG, 1), **changes}.items() if v is not None}
    _invalid(_body(_image(config=config)))


@pytest.mark.parametrize(
    "changes",
    [
        {"manifests": None},
        {"manifests": {}},
        {"manifests": ["x"]},
        {"layers": []},
        {"config": _descriptor(OCI_CONFIG, 1)},
    ],
    ids=["missing", "object", "strings", "with-layers", "with-config"],
)
def test_wrong_shapes_of_indexes(changes: dict[str, Any]) -> None:
    document = {k: v for k, v in {**_index_document(), **changes}.items() if v is not None}
    _invalid(_body(document), OCI_INDEX)


def test_image_manifest_cannot_list_manifests() -> None:
    assert "manifests" in _invalid(_body(_image(manifests=[])))


def test_refusal_details_are_bounded() -> None:
    reason = _invalid(_body(_image(config={**_descriptor(OCI_CONFIG, 1), "digest": "x" * 100_000})))
    assert len(reason) < 400


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ""),
        ("", ""),
        (OCI_MANIFEST, OCI_MANIFEST),
        (f"{OCI_MANIFEST}; charset=utf-8", OCI_MANIFEST),
        ("  Application/JSON ; q=1", "application/json"),
    ],
)
def test_media_type_of(header: str | None, expected: str) -> None:
    assert media_type_of(header) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_body(_image(DOCKER_MANIFEST)), DOCKER_MANIFEST),
        (_body(_image(None)), OCI_MANIFEST),
        (_body(_index_document(None)), OCI_INDEX),
        (_body(_index_document(DOCKER_MANIFEST_LIST)), DOCKER_MANIFEST_LIST),
        (b"not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
    ],
)
def test_stored_media_type(body: bytes, expected: str) -> None:
    assert stored_media_type(body) == expected


def test_check_urls() -> None:
    allow = [re.compile(r"^https?://([^/]+\.)*example\.com/")]
    deny = [re.compile(r"^https?://www\.example\.com/")]
    check_urls(["https://cdn.example.com/a", "http://example.com/b"], allow, deny)
    check_urls(["https://anywhere.org/x"], [], [])
    for url in (
        "https://www.example.com/a",
        "https://elsewhere.org/a",
        "ftp://cdn.example.com/a",
        "file:///etc/passwd",
        "https://cdn.example.com/a#fragment",
    ):
        with pytest.raises(RegistryError) as raised:
            check_urls([url], allow, deny)
        assert raised.value.code is ErrorCode.MANIFEST_INVALID
    with pytest.raises(RegistryError):
        check_urls(["javascript:alert(1)"], [], [])


@pytest.mark.parametrize("size", [2**63, 2**64, -1, 1.0, "10", True, None])
@pytest.mark.parametrize("where", ["config", "layers[]", "manifests[]", "subject"])
def test_descriptor_sizes_must_be_int64_wherever_they_are(where: str, size: object) -> None:
    """Refused without looking at any blob: a size beyond int64 breaks clients whatever is stored."""
    bad = {**_descriptor(OCI_MANIFEST, 7), "size": size}
    if where == "config":
        body, content_type = _body(_image(config=bad)), OCI_MANIFEST
    elif where == "layers[]":
        body, content_type = _body(_image(layers=[bad])), OCI_MANIFEST
    elif where == "manifests[]":
        body, content_type = _body(_index_document(manifests=[bad])), OCI_INDEX
    else:
        body, content_type = _body(_image(subject=bad)), OCI_MANIFEST
    assert f"{where}.size" in _invalid(body, content_type)


def test_the_largest_int64_size_is_well_formed() -> None:
    manifest = parse_manifest(_body(_image(layers=[_descriptor(OCI_LAYER, 2, size=2**63 - 1)])), OCI_MANIFEST)
    assert manifest.blobs[1].size == 2**63 - 1
