"""Headers across the API: the API version on every response, Location as configured by
``http.host`` and ``http.relativeurls``, and the operator's ``http.headers``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.registry import StartRegistry

from .client import API_VERSION, RegistryClient, assert_blob_content, assert_manifest_served
from .conftest import unique_name, variant
from .content import OCI_MANIFEST, Content, blob, image_config, image_manifest

EXTERNAL = "https://registry.example.com:8443"
EXTRA_HEADERS = {"X-Content-Type-Options": ["nosniff"], "X-Registry-Note": ["first", "second"]}


def exchanges(client: RegistryClient, repo: str) -> Iterator[httpx.Response]:
    """One request of every kind the API answers, successes and failures alike."""
    content = blob(100)
    config = image_config()
    manifest = image_manifest(config, [content])
    yield client.get("/v2/")
    yield client.head("/v2/")
    location = urlsplit(client.start_upload(repo)).path  # http.host may name another host
    yield client.patch(location, content=content.data[:50], headers={"Content-Range": "0-49"})
    yield client.patch(location, content=content.data[:50], headers={"Content-Range": "0-49"})  # 416
    yield client.get(location)  # 204
    yield client.put(location, params={"digest": content.digest}, content=content.data[50:])  # 201
    yield client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": config.digest}, content=config.data)
    yield client.get(f"/v2/{repo}/blobs/{content.digest}", headers={"Range": "bytes=0-9"})  # 206
    yield client.get(f"/v2/{repo}/blobs/{content.digest}", headers={"Range": "bytes=500-"})  # 416
    yield client.put_manifest(repo, "v1", manifest)  # 201
    yield client.get_manifest(repo, "v1")
    yield client.get_manifest(repo, "v1", method="HEAD")
    yield client.get(f"/v2/{repo}/tags/list")
    yield client.get(f"/v2/{repo}/referrers/{manifest.digest}")
    yield client.get("/v2/_catalog", params={"n": "1"})
    yield client.get(f"/v2/{repo}/manifests/missing")  # 404
    yield client.get(f"/v2/{repo}/blobs/sha256:bad")  # 400
    yield client.put_manifest(repo, "big", Content(b"x" * (4 * 1024 * 1024 + 1), OCI_MANIFEST))  # 413
    yield client.post("/v2/")  # 405
    yield client.get("/not/the/api")  # 404
    yield client.delete(f"/v2/{repo}/manifests/v1")  # 202
    yield client.delete(location)  # 404: finished


def test_every_response_has_the_api_version_and_no_challenge(client: RegistryClient, repo: str) -> None:
    statuses = set()
    for response in exchanges(client, repo):
        statuses.add(response.status_code)
        assert response.headers["Docker-Distribution-API-Version"] == API_VERSION, response.request.url
        assert "WWW-Authenticate" not in response.headers
    assert statuses >= {200, 201, 202, 204, 206, 400, 404, 405, 413, 416}


def test_location_follows_the_host_the_client_used(client: RegistryClient, repo: str) -> None:
    """Without ``http.host`` an absolute Location names the host the request was sent to."""
    content = blob()
    host = {"Host": "registry.internal:5000"}
    response = client.post(f"/v2/{repo}/blobs/uploads/", headers=host)
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.startswith(f"http://registry.internal:5000/v2/{repo}/blobs/uploads/")
    response = client.put(
        urlsplit(location).path, params={"digest": content.digest}, content=content.data, headers=host
    )
    assert response.headers["Location"] == f"http://registry.internal:5000/v2/{repo}/blobs/{content.digest}"


def test_bodiless_responses_have_content_length_zero(client: RegistryClient, repo: str) -> None:
    content = blob()
    location = client.start_upload(repo)
    for response, status in [
        (client.post(f"/v2/{repo}/blobs/uploads/"), 202),
        (client.patch(location, content=content.data), 202),
        (client.get(location), 204),
        (client.put(location, params={"digest": content.digest}), 201),
        (client.delete(client.start_upload(repo)), 204),
        (client.delete(f"/v2/{repo}/blobs/{content.digest}"), 202),
    ]:
        assert response.status_code == status, (response.request.method, response.text)
        assert response.content == b""
        if response.status_code != 204:
            assert response.headers["Content-Length"] == "0"


LocationCheck = Callable[[str, str], None]


def check_locations(client: RegistryClient, expect: LocationCheck) -> None:
    """Every Location the API gives: upload sessions, blobs, mounts and manifests."""
    repo, source = unique_name("locations"), unique_name("source")
    content, mounted = blob(), blob()
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202
    upload_path = f"/v2/{repo}/blobs/uploads/{response.headers['Docker-Upload-UUID']}"
    expect(response.headers["Location"], upload_path)
    response = client.patch(upload_path, content=content.data)
    assert response.status_code == 202
    expect(response.headers["Location"], upload_path)
    response = client.get(upload_path)
    assert response.status_code == 204
    expect(response.headers["Location"], upload_path)
    response = client.put(upload_path, params={"digest": content.digest})
    assert response.status_code == 201
    expect(response.headers["Location"], f"/v2/{repo}/blobs/{content.digest}")
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": mounted.digest}, content=mounted.data
    )
    expect(response.headers["Location"], f"/v2/{repo}/blobs/{mounted.digest}")
    response = client.post(f"/v2/{source}/blobs/uploads/", params={"mount": mounted.digest, "from": repo})
    assert response.status_code == 201
    expect(response.headers["Location"], f"/v2/{source}/blobs/{mounted.digest}")
    config = image_config()
    client.push_blob(repo, config)
    manifest = image_manifest(config, [content])
    response = client.put_manifest(repo, "v1", manifest)
    assert response.status_code == 201
    expect(response.headers["Location"], f"/v2/{repo}/manifests/{manifest.digest}")
    assert_manifest_served(client, repo, "v1", manifest)
    assert_blob_content(client, source, mounted)


def test_default_locations_are_absolute(client: RegistryClient) -> None:
    def expect(location: str, path: str) -> None:
        assert location == client.base_url + path

    check_locations(client, expect)


@pytest.fixture(scope="module")
def relative(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    config = {"http": {"relativeurls": True, "host": EXTERNAL}}  # relative URLs win over http.host
    with variant(start_registry, config) as (_, client):
        yield client


@pytest.fixture(scope="module")
def external(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    with variant(start_registry, {"http": {"host": EXTERNAL, "headers": EXTRA_HEADERS}}) as (_, client):
        yield client


def test_relative_urls(relative: RegistryClient) -> None:
    def expect(location: str, path: str) -> None:
        assert location == path

    check_locations(relative, expect)


def test_http_host_sets_the_location_base(external: RegistryClient) -> None:
    def expect(location: str, path: str) -> None:
        assert location == EXTERNAL + path

    check_locations(external, expect)


def test_http_headers_on_every_response(external: RegistryClient) -> None:
    repo = unique_name("extra-headers")
    for response in exchanges(external, repo):
        served = response.history[0] if response.history else response  # a redirect's target is not ours
        assert served.headers.get_list("X-Content-Type-Options") == ["nosniff"], response.request.url
        assert served.headers.get_list("X-Registry-Note") == ["first", "second"]
