"""Cross-repository blob mounts (end-11): with ``from=`` and by digest alone."""

from __future__ import annotations

from .client import (
    RegistryClient,
    assert_blob_content,
    assert_blob_created,
    assert_error,
    assert_upload_session,
)
from .conftest import NewRepo
from .content import blob


def test_mount_from_another_repository(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    source = new_repo()
    content = blob(200)
    client.push_blob(source, content)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest, "from": source})
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)
    assert_blob_content(client, source, content)


def test_mount_from_a_repository_lacking_the_blob_starts_a_session(
    client: RegistryClient, repo: str, new_repo: NewRepo
) -> None:
    source = new_repo()
    content = blob(200)
    client.push_blob(source, blob(10))  # the source exists, without this blob
    elsewhere = new_repo()
    client.push_blob(elsewhere, content)  # the blob exists, but not in the source
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest, "from": source})
    assert response.status_code == 202, response.text
    location = assert_upload_session(client, response, repo, 0)
    assert client.blob_status(repo, content.digest) == 404
    response = client.put(location, params={"digest": content.digest}, content=content.data)
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_mount_from_an_unknown_repository_starts_a_session(
    client: RegistryClient, repo: str, new_repo: NewRepo
) -> None:
    content = blob(20)
    client.push_blob(new_repo(), content)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest, "from": new_repo()})
    assert response.status_code == 202
    assert_upload_session(client, response, repo, 0)
    assert client.blob_status(repo, content.digest) == 404


def test_mount_of_a_deleted_blob_starts_a_session(
    client: RegistryClient, repo: str, new_repo: NewRepo
) -> None:
    source = new_repo()
    content = blob(20)
    client.push_blob(source, content)
    assert client.delete(f"/v2/{source}/blobs/{content.digest}").status_code == 202
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest, "from": source})
    assert response.status_code == 202
    assert_upload_session(client, response, repo, 0)


def test_anonymous_mount_of_a_blob_held_anywhere(
    client: RegistryClient, repo: str, new_repo: NewRepo
) -> None:
    content = blob(64)
    client.push_blob(new_repo(), content)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest})
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_anonymous_mount_of_an_unknown_blob_starts_a_session(client: RegistryClient, repo: str) -> None:
    content = blob(64)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest})
    assert response.status_code == 202
    location = assert_upload_session(client, response, repo, 0)
    response = client.put(location, params={"digest": content.digest}, content=content.data)
    assert_blob_created(client, response, repo, content.digest)


def test_mount_into_a_repository_that_has_the_blob(
    client: RegistryClient, repo: str, new_repo: NewRepo
) -> None:
    content = blob(64)
    source = new_repo()
    client.push_blobs(source, content)
    client.push_blob(repo, content)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": content.digest, "from": source})
    assert_blob_created(client, response, repo, content.digest)


def test_mount_with_invalid_digest_is_400(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": "sha256:1234", "from": new_repo()})
    assert_error(response, 400, "DIGEST_INVALID")


def test_mount_from_invalid_name_is_400(client: RegistryClient, repo: str) -> None:
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": blob().digest, "from": "Bad/../Name"}
    )
    assert_error(response, 400, "NAME_INVALID")
