"""Digest and size are verified before anything becomes visible; small files are never torn."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.integrity.layout import check_layout
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.pushing import error_codes, expect, image_manifest, push_blob, push_manifest, start_upload
from tests.support.registry import RunningRegistry

V2 = Path("docker/registry/v2")


def _blob_file(root: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return root / V2 / "blobs" / algorithm / hex_[:2] / hex_ / "data"


def _layer_link(root: Path, name: str, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return root / V2 / "repositories" / name / "_layers" / algorithm / hex_ / "link"


def _uploads(root: Path, name: str) -> list[Path]:
    directory = root / V2 / "repositories" / name / "_uploads"
    return list(directory.iterdir()) if directory.exists() else []


def _assert_invisible(client: httpx.Client, root: Path, name: str, *digests: str) -> None:
    for digest in digests:
        assert not _blob_file(root, digest).exists(), digest
        assert not _layer_link(root, name, digest).exists(), digest
        response = client.head(f"/v2/{name}/blobs/{digest}")
        assert response.status_code == 404, (digest, response.status_code)
    assert _uploads(root, name) == []


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_monolithic_push_with_wrong_digest_leaves_nothing(
    client: httpx.Client, multi_worker_registry: RunningRegistry, algorithm: str
) -> None:
    name = f"integrity/wrong-mono-{algorithm}"
    data, claimed_data = os.urandom(4096), os.urandom(4096)
    claimed = digest_of(claimed_data, algorithm)
    response = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": claimed}, content=data)
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    _assert_invisible(client, multi_worker_registry.root, name, claimed, digest_of(data, algorithm))


def test_chunked_push_with_wrong_digest_discards_the_upload(
    client: httpx.Client, multi_worker_registry: RunningRegistry
) -> None:
    name = "integrity/wrong-chunked"
    data = os.urandom(300_000)
    location = start_upload(client, name)
    expect(client.patch(location, content=data[:100_000]), 202)
    expect(client.patch(location, content=data[100_000:]), 202)
    claimed = digest_of(data[:-1])
    response = client.put(location, params={"digest": claimed})
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    _assert_invisible(client, multi_worker_registry.root, name, claimed, digest_of(data))
    stale = client.put(location, params={"digest": digest_of(data)})
    assert stale.status_code == 404
    assert error_codes(stale) == ["BLOB_UPLOAD_UNKNOWN"]


def test_finishing_with_a_truncated_last_chunk_fails(
    client: httpx.Client, multi_worker_registry: RunningRegistry
) -> None:
    """The size is part of what is verified: the digest of the whole blob with bytes missing."""
    name = "integrity/short"
    data = os.urandom(200_000)
    location = start_upload(client, name)
    expect(client.patch(location, content=data[:100_000]), 202)
    response = client.put(location, params={"digest": digest_of(data)}, content=data[100_000:-1])
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    _assert_invisible(client, multi_worker_registry.root, name, digest_of(data))


def test_chunk_whose_length_disagrees_with_its_range_changes_nothing(
    client: httpx.Client, multi_worker_registry: RunningRegistry
) -> None:
    name = "integrity/size-mismatch"
    data = os.urandom(1000)
    location = start_upload(client, name)
    response = client.patch(location, content=data, headers={"Content-Range": "0-1999"})
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["SIZE_INVALID"]
    assert expect(client.get(location), 204).headers["Range"] == "0-0"
    response = expect(client.put(location, params={"digest": digest_of(data)}, content=data), 201)
    assert expect(client.get(response.headers["Location"]), 200).content == data


def test_manifest_with_mismatching_digest_in_url_is_not_stored(
    client: httpx.Client, multi_worker_registry: RunningRegistry
) -> None:
    name = "integrity/manifest-digest"
    config, layer = os.urandom(100), os.urandom(1000)
    push_blob(client, name, config)
    push_blob(client, name, layer)
    manifest = image_manifest(config, [layer])
    wrong = digest_of(manifest + b" ")
    response = client.put(
        f"/v2/{name}/manifests/{wrong}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    for digest in (wrong, digest_of(manifest)):
        assert not _blob_file(multi_worker_registry.root, digest).exists()
        assert client.get(f"/v2/{name}/manifests/{digest}").status_code == 404


def test_manifest_referencing_a_missing_blob_is_not_stored(
    client: httpx.Client, multi_worker_registry: RunningRegistry
) -> None:
    name = "integrity/manifest-missing"
    config, layer = os.urandom(100), os.urandom(1000)
    push_blob(client, name, config)
    manifest = image_manifest(config, [layer])
    response = client.put(
        f"/v2/{name}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert not _blob_file(multi_worker_registry.root, digest_of(manifest)).exists()
    tag_dir = multi_worker_registry.root / V2 / "repositories" / name / "_manifests" / "tags" / "v1"
    assert not tag_dir.exists()
    assert client.get(f"/v2/{name}/manifests/v1").status_code == 404


def test_every_small_file_written_is_complete(
    client: httpx.Client, multi_worker_registry: RunningRegistry
) -> None:
    """After many pushes and re-tags no link is empty or torn and no temp file is left behind."""
    name = "integrity/links"
    config = os.urandom(64)
    push_blob(client, name, config)
    for round_ in range(20):
        layer = os.urandom(512)
        push_blob(client, name, layer)
        manifest = image_manifest(config, [layer])
        push_manifest(client, name, "latest", manifest, OCI_MANIFEST)
        push_manifest(client, name, f"r{round_}", manifest, OCI_MANIFEST)
    report = check_layout(multi_worker_registry.root)
    assert report.problems == []
    assert report.temp_files == []
    assert len([t for (repo, t) in report.tags if repo == name]) == 21
