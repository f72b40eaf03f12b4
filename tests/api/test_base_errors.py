"""The base endpoint (end-1) and the error responses every endpoint shares."""

from __future__ import annotations

import pytest

from .client import RegistryClient, assert_error, media_type
from .content import blob


def test_base_endpoint_answers_empty_json(client: RegistryClient) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert media_type(response) == "application/json"
    assert response.json() == {}
    assert response.headers["Content-Length"] == str(len(response.content))


def test_base_endpoint_head_has_no_body(client: RegistryClient) -> None:
    response = client.head("/v2/")
    assert response.status_code == 200
    assert response.content == b""


def test_base_endpoint_without_trailing_slash(client: RegistryClient) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize(
    "path",
    ["/v2/x/unknown/thing", "/v3/", "/nothing", "/v2/x/blobs", "/v2/x/manifests"],
)
def test_unknown_endpoint_is_404_unsupported(client: RegistryClient, path: str) -> None:
    assert_error(client.get(path), 404, "UNSUPPORTED")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v2/", "GET, HEAD"),
        ("DELETE", "/v2/_catalog", "GET, HEAD"),
        ("PUT", "/v2/x/blobs/sha256:" + "0" * 64, "DELETE, GET, HEAD"),
        ("POST", "/v2/x/manifests/latest", "DELETE, GET, HEAD, PUT"),
        ("PATCH", "/v2/x/tags/list", "GET, HEAD"),
        ("GET", "/v2/x/blobs/uploads/", "POST"),
    ],
)
def test_wrong_method_is_405_unsupported_with_allow(
    client: RegistryClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "UNSUPPORTED")
    assert response.headers["Allow"] == allow


@pytest.mark.parametrize(
    "path",
    [
        "/v2/Upper/tags/list",
        "/v2/a..b/manifests/latest",
        "/v2/-a/blobs/sha256:" + "0" * 64,
        "/v2/" + "a" * 256 + "/tags/list",
    ],
)
def test_invalid_repository_name_is_400_name_invalid(client: RegistryClient, path: str) -> None:
    assert_error(client.get(path), 400, "NAME_INVALID")


def test_unknown_blob_is_404_blob_unknown(client: RegistryClient, repo: str) -> None:
    digest = blob().digest
    error = assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert digest in str(error.get("detail"))


def test_unknown_manifest_is_404_manifest_unknown(client: RegistryClient, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/manifests/latest"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/manifests/{blob().digest}"), 404, "MANIFEST_UNKNOWN")


def test_unknown_upload_is_404_blob_upload_unknown(client: RegistryClient, repo: str) -> None:
    path = f"/v2/{repo}/blobs/uploads/0b7e1e2a-5f0c-4a6e-9d1e-2f3a4b5c6d7e"
    assert_error(client.get(path), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(path, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(path), 404, "BLOB_UPLOAD_UNKNOWN")


def test_malformed_upload_id_is_404_blob_upload_unknown(client: RegistryClient, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/uploads/not-an-upload"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_invalid_tag_is_400_tag_invalid(client: RegistryClient, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/manifests/{'t' * 129}"), 400, "TAG_INVALID")
    assert_error(client.get(f"/v2/{repo}/manifests/-tag"), 400, "TAG_INVALID")


def test_head_error_has_status_and_headers_but_no_body(client: RegistryClient, repo: str) -> None:
    response = client.head(f"/v2/{repo}/blobs/{blob().digest}")
    assert_error(response, 404, "BLOB_UNKNOWN")
    assert response.content == b""


def test_error_message_is_the_spec_message(client: RegistryClient, repo: str) -> None:
    error = assert_error(client.get(f"/v2/{repo}/blobs/{blob().digest}"), 404, "BLOB_UNKNOWN")
    assert error["message"] == "blob unknown to registry"
