"""Blob downloads nginx sends itself: a registry with ``http.accelredirect`` behind each shipped
site, whose blobs location points at the registry's storage (the one line an operator edits).

The registry still decides every request (access, the digest, the Range); it answers a blob GET
with ``X-Accel-Redirect`` and no body, and nginx reads the file. Every answer must look as the
registry's own would: digest, ETag, type, length, ranges, the API version header once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.containers import ContainerTools
from tests.support.images import digest_of, every_blob, random_image, write_oci_layout
from tests.support.nginx import HTTP_SITE, TLS_SITE, Nginx
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.tls import ServerCertificates

from .conftest import trusting
from .flows import Upload

pytestmark = pytest.mark.nginx

PREFIX = "/_dockyard/blobs/"
API_VERSION = "docker-distribution-api-version"


@pytest.fixture(scope="module")
def accel_registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> RunningRegistry:
    root = tmp_path_factory.mktemp("accel") / "data"
    return start_registry({"http": {"accelredirect": PREFIX}}, root=root)


@pytest.fixture(scope="module", params=["tls", "http"])
def accel_proxy(
    request: pytest.FixtureRequest,
    start_nginx: Callable[..., Nginx],
    accel_registry: RunningRegistry,
    certificates: ServerCertificates,
) -> Nginx:
    site, certs = (TLS_SITE, certificates) if request.param == "tls" else (HTTP_SITE, None)
    return start_nginx(site, accel_registry.host, certs, storage_root=accel_registry.root)


@pytest.fixture
def client(accel_proxy: Nginx, certificates: ServerCertificates) -> Iterator[httpx.Client]:
    verify = trusting(certificates) if accel_proxy.tls else True
    with httpx.Client(base_url=accel_proxy.url, verify=verify, timeout=120) as http:
        yield http


@pytest.fixture
def repository() -> str:
    return f"accel/r-{os.urandom(4).hex()}"


def push(client: httpx.Client, repository: str, content: bytes) -> str:
    upload = Upload(client, repository).start()
    return upload.finish(content)


def test_nginx_sends_the_file_the_registry_names(
    client: httpx.Client, accel_proxy: Nginx, accel_registry: RunningRegistry, repository: str
) -> None:
    content = os.urandom(5 * (1 << 20) + 123)
    digest = push(client, repository, content)
    hex_digest = digest.removeprefix("sha256:")

    # The registry itself sends no content, only where nginx finds it.
    direct = httpx.get(f"{accel_registry.url}/v2/{repository}/blobs/{digest}")
    assert direct.status_code == 200
    assert direct.content == b""
    assert direct.headers["x-accel-redirect"] == f"{PREFIX}sha256/{hex_digest[:2]}/{hex_digest}/data"

    response = client.get(f"/v2/{repository}/blobs/{digest}")
    assert response.status_code == 200, response.text
    assert response.content == content
    headers = response.headers
    assert headers.get_list("docker-content-digest") == [digest]
    assert headers.get_list("etag") == [f'"{digest}"']
    assert headers.get_list(API_VERSION) == ["registry/2.0"]
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == str(len(content))
    assert headers["cache-control"] == "max-age=31536000"
    assert headers["accept-ranges"] == "bytes"
    assert "x-accel-redirect" not in headers
    if accel_proxy.tls:
        assert headers["strict-transport-security"] == "max-age=63072000"
        assert response.http_version == "HTTP/1.1"


def test_ranges_conditions_and_head_keep_their_meaning(client: httpx.Client, repository: str) -> None:
    content = os.urandom(300_000)
    digest = push(client, repository, content)
    url = f"/v2/{repository}/blobs/{digest}"

    part = client.get(url, headers={"Range": "bytes=1000-70999"})
    assert part.status_code == 206
    assert part.content == content[1000:71000]
    assert part.headers["content-range"] == f"bytes 1000-70999/{len(content)}"
    assert part.headers.get_list("docker-content-digest") == [digest]
    suffix = client.get(url, headers={"Range": "bytes=-10"})
    assert (suffix.status_code, suffix.content) == (206, content[-10:])

    # Ranges the registry refuses never reach nginx's file.
    for bad in (f"bytes={len(content)}-", "bytes=5-1", "bytes=0-1,5-9", "lines=1-2"):
        refused = client.get(url, headers={"Range": bad})
        assert refused.status_code == 416, (bad, refused.text)
        assert refused.json()["errors"][0]["code"] == "SIZE_INVALID"
        assert refused.headers["content-range"] == f"bytes */{len(content)}"
        assert refused.headers.get_list(API_VERSION) == ["registry/2.0"]

    unchanged = client.get(url, headers={"If-None-Match": f'"{digest}"'})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    head = client.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(content))
    assert head.headers.get_list("docker-content-digest") == [digest]


def test_the_registry_still_decides_which_blobs_a_repository_serves(
    client: httpx.Client, repository: str
) -> None:
    digest = push(client, repository, os.urandom(1000))
    for path in (f"/v2/{repository}-other/blobs/{digest}", f"/v2/{repository}/blobs/sha256:{'0' * 64}"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert response.headers.get_list(API_VERSION) == ["registry/2.0"]


def test_clients_cannot_ask_for_the_files_themselves(
    client: httpx.Client, accel_registry: RunningRegistry, repository: str
) -> None:
    content = os.urandom(1000)
    digest = push(client, repository, content)
    hex_digest = digest.removeprefix("sha256:")
    link = f"repositories/{repository}/_layers/sha256/{hex_digest}/link"
    assert (accel_registry.root / "docker/registry/v2" / link).exists()
    for path in (
        f"{PREFIX}sha256/{hex_digest[:2]}/{hex_digest}/data",
        f"{PREFIX}../{link}",
        f"{PREFIX}%2e%2e/{link}",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert content not in response.content
        assert hex_digest not in response.text


def test_a_large_blob_arrives_whole(client: httpx.Client, repository: str) -> None:
    chunks = [os.urandom(1 << 20) for _ in range(64)]
    upload = Upload(client, repository).start()
    upload.patch_stream(chunks)
    digest = upload.finish()
    hasher, size = hashlib.sha256(), 0
    with client.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(1 << 20):
            hasher.update(chunk)
            size += len(chunk)
    assert (f"sha256:{hasher.hexdigest()}", size) == (digest, 64 << 20)


@pytest.mark.clients
def test_skopeo_pulls_through_nginx_serving_the_blobs(
    client: httpx.Client,
    accel_proxy: Nginx,
    container_tools: ContainerTools,
    certificates: ServerCertificates,
    repository: str,
    tmp_path: Path,
) -> None:
    image = random_image(layers=3)
    source = f"oci:{write_oci_layout(tmp_path / 'layout', {'v1': image})}:v1"
    reference = f"docker://{accel_proxy.host}/{repository}:v1"
    if accel_proxy.tls:
        cert_dir = tmp_path / "certs.d"
        cert_dir.mkdir()
        (cert_dir / "ca.crt").write_bytes(certificates.ca_cert.read_bytes())
        to, source_flag = f"--dest-cert-dir={cert_dir}", f"--src-cert-dir={cert_dir}"
    else:
        to, source_flag = "--dest-tls-verify=false", "--src-tls-verify=false"

    def skopeo(*arguments: str) -> None:
        result = subprocess.run(
            ["skopeo", *arguments],
            capture_output=True,
            text=True,
            env=container_tools.env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{arguments}\n{result.stdout}\n{result.stderr}"

    skopeo("copy", to, source, reference)
    skopeo("copy", source_flag, reference, f"oci:{tmp_path / 'out'}:copied")
    copied = tmp_path / "out" / "blobs" / "sha256"
    assert {f"sha256:{path.name}" for path in copied.iterdir()} == {blob.digest for blob in every_blob(image)}
    for path in copied.iterdir():
        assert digest_of(path.read_bytes()) == f"sha256:{path.name}"
