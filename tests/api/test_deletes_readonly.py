"""Registries that refuse changes: deletes disabled (``storage.delete.enabled: false``) and
read-only mode (``storage.maintenance.readonly.enabled``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry import RunningRegistry, StartRegistry

from .client import Image, RegistryClient, assert_blob_content, assert_error, assert_manifest_served
from .conftest import NewRepo, unique_name, variant
from .content import blob, image_config, image_manifest


@pytest.fixture(scope="module")
def no_deletes(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    with variant(start_registry, {"storage": {"delete": {"enabled": False}}}) as (_, client):
        yield client


@pytest.fixture(scope="module")
def read_only_repo(client: RegistryClient) -> tuple[str, Image]:
    """A repository pushed through the shared (writable) registry before read-only mode serves it."""
    repo = unique_name("read-only")
    return repo, client.push_image(repo, "v1")


@pytest.fixture(scope="module")
def read_only(
    start_registry: StartRegistry, registry_server: RunningRegistry, read_only_repo: tuple[str, Image]
) -> Iterator[RegistryClient]:
    config = {"storage": {**registry_server.storage, "maintenance": {"readonly": {"enabled": True}}}}
    with variant(start_registry, config) as (_, client):
        yield client


def test_blob_delete_disabled_is_405(no_deletes: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    content = blob()
    no_deletes.push_blob(repo, content)
    assert_error(no_deletes.delete(f"/v2/{repo}/blobs/{content.digest}"), 405, "UNSUPPORTED")
    assert_blob_content(no_deletes, repo, content)


def test_manifest_delete_disabled_is_405(no_deletes: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    image = no_deletes.push_image(repo, "v1")
    assert_error(no_deletes.delete(f"/v2/{repo}/manifests/v1"), 405, "UNSUPPORTED")
    assert_error(no_deletes.delete(f"/v2/{repo}/manifests/{image.manifest.digest}"), 405, "UNSUPPORTED")
    assert_manifest_served(no_deletes, repo, "v1", image.manifest)
    assert_manifest_served(no_deletes, repo, image.manifest.digest, image.manifest)
    assert no_deletes.tags(repo) == ["v1"]


def test_upload_cancel_works_with_deletes_disabled(no_deletes: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    location = no_deletes.start_upload(repo)
    assert no_deletes.delete(location).status_code == 204
    assert_error(no_deletes.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_pushes_work_with_deletes_disabled(no_deletes: RegistryClient, new_repo: NewRepo) -> None:
    repo = new_repo()
    image = no_deletes.push_image(repo, "v1", layer_count=2)
    assert_manifest_served(no_deletes, repo, "v1", image.manifest)


def test_read_only_serves_pulls(read_only: RegistryClient, read_only_repo: tuple[str, Image]) -> None:
    repo, image = read_only_repo
    assert_manifest_served(read_only, repo, "v1", image.manifest)
    assert_blob_content(read_only, repo, image.layers[0])
    assert read_only.tags(repo) == ["v1"]
    assert read_only.get("/v2/_catalog", params={"n": "1000"}).status_code == 200
    referrers = read_only.get(f"/v2/{repo}/referrers/{image.manifest.digest}")
    assert referrers.status_code == 200
    assert referrers.json()["manifests"] == []


def test_read_only_refuses_every_write(
    read_only: RegistryClient, client: RegistryClient, read_only_repo: tuple[str, Image]
) -> None:
    repo, image = read_only_repo
    content = blob()
    writable_upload = client.start_upload(repo)
    upload_path = writable_upload.removeprefix(client.base_url)
    config = image_config()
    attempts = [
        read_only.post(f"/v2/{repo}/blobs/uploads/"),
        read_only.post(f"/v2/{repo}/blobs/uploads/", params={"digest": content.digest}, content=content.data),
        read_only.post(f"/v2/{repo}/blobs/uploads/", params={"mount": image.config.digest, "from": repo}),
        read_only.patch(upload_path, content=b"chunk"),
        read_only.put(upload_path, params={"digest": content.digest}, content=content.data),
        read_only.delete(upload_path),
        read_only.put_manifest(repo, "v2", image_manifest(config)),
        read_only.put_manifest(repo, image.manifest.digest, image.manifest),
        read_only.delete(f"/v2/{repo}/manifests/v1"),
        read_only.delete(f"/v2/{repo}/manifests/{image.manifest.digest}"),
        read_only.delete(f"/v2/{repo}/blobs/{image.layers[0].digest}"),
    ]
    for response in attempts:
        assert_error(response, 405, "UNSUPPORTED")
    assert_manifest_served(read_only, repo, "v1", image.manifest)
    assert_blob_content(client, repo, image.layers[0])
    assert client.blob_status(repo, content.digest) == 404
    assert client.tags(repo) == ["v1"]
    status = client.get(writable_upload)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"
