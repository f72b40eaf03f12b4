"""Uploads and downloads through the proxy: chunked, streamed both ways, HTTP/2, a 1 GiB layer."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.nginx import Nginx
from tests.support.registry import RunningRegistry
from tests.support.tls import ServerCertificates

from .conftest import trusting
from .flows import Upload, download_digest

pytestmark = pytest.mark.nginx

MiB = 1 << 20
GiB = 1 << 30


def blob_dir(registry: RunningRegistry, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return registry.root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest


def test_chunked_upload(proxy: Nginx, client: httpx.Client, repository: str) -> None:
    upload = Upload(client, repository).start()
    upload.patch_stream(os.urandom(MiB) for _ in range(3))
    upload.patch_range(os.urandom(MiB // 2))
    upload.patch_stream([os.urandom(300_000)])
    digest = upload.finish(os.urandom(100_000))

    head = client.head(f"/v2/{repository}/blobs/{digest}")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == upload.size
    assert download_digest(client, repository, digest) == (digest, upload.size)


def test_monolithic_upload_of_unknown_length(proxy: Nginx, client: httpx.Client, repository: str) -> None:
    chunks = [os.urandom(MiB) for _ in range(5)]
    digest = "sha256:" + hashlib.sha256(b"".join(chunks)).hexdigest()
    response = client.post(f"/v2/{repository}/blobs/uploads/?digest={digest}", content=iter(chunks))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{proxy.url}/v2/{repository}/blobs/{digest}"
    assert download_digest(client, repository, digest) == (digest, 5 * MiB)


def test_upload_reaches_the_registry_while_the_client_still_sends(
    proxy: Nginx, client: httpx.Client, proxied_registry: RunningRegistry, repository: str
) -> None:
    """nginx forwards the body as it arrives: the registry stores the first part before the rest
    is even sent (a buffering proxy would hold all of it until the client finished)."""
    upload = Upload(client, repository).start()
    folder = proxied_registry.root / "docker/registry/v2/repositories" / repository / "_uploads" / upload.uuid
    seen_mid_request: list[int] = []

    def stored() -> int:
        """Bytes in the upload's folder, whatever the registry names its files while writing."""
        return sum(p.stat().st_size for p in folder.iterdir() if p.name != "startedat")

    def body() -> Iterator[bytes]:
        yield os.urandom(8 * MiB)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if stored() > 0:
                seen_mid_request.append(stored())
                break
            time.sleep(0.05)
        yield os.urandom(MiB)

    upload.patch_stream(body())
    assert seen_mid_request, "the registry received nothing until the request body was complete"
    digest = upload.finish()
    assert download_digest(client, repository, digest) == (digest, 9 * MiB)


def test_download_streams_without_spooling_in_nginx(
    proxy: Nginx, client: httpx.Client, repository: str
) -> None:
    """A slow reader of a large blob: nginx passes bytes on as the client takes them instead of
    draining the registry into a temporary file."""
    upload = Upload(client, repository).start()
    upload.patch_stream(os.urandom(MiB) for _ in range(48))
    digest = upload.finish()

    hasher = hashlib.sha256()
    with client.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
        chunks = response.iter_bytes(64 * 1024)
        hasher.update(next(chunks))
        time.sleep(2)  # long enough for a buffering nginx to spool the rest to disk
        for chunk in chunks:
            hasher.update(chunk)
    assert f"sha256:{hasher.hexdigest()}" == digest
    assert "buffered to a temporary file" not in proxy.log()


def curl(certificates: ServerCertificates, *args: str, stdin: bytes = b"") -> str:
    """curl over HTTP/2 trusting only the test CA; returns what it prints."""
    command = ["curl", "--silent", "--show-error", "--http2", "--cacert", str(certificates.ca_cert)]
    result = subprocess.run([*command, *args], input=stdin, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode(errors="replace")


def test_http2_streamed_upload_and_download(
    tls_proxy: Nginx, certificates: ServerCertificates, repository: str, tmp_path: Path
) -> None:
    with httpx.Client(base_url=tls_proxy.url, verify=trusting(certificates)) as client:
        upload = Upload(client, repository).start()
    content = os.urandom(3 * MiB + 123)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()

    # From stdin: curl sends HTTP/2 DATA frames with no length announced.
    patched = curl(certificates, "--include", "-X", "PATCH", "-T", "-", upload.location, stdin=content)
    assert patched.startswith("HTTP/2 202"), patched
    assert f"range: 0-{len(content) - 1}" in patched.lower()
    location = next(
        line.split(":", 1)[1].strip() for line in patched.splitlines() if line.lower().startswith("location:")
    )
    assert location.startswith(f"https://{tls_proxy.host}/v2/{repository}/blobs/uploads/")
    separator = "&" if "?" in location else "?"
    finished = curl(
        certificates, "--include", "-X", "PUT", "--data-binary", "", f"{location}{separator}digest={digest}"
    )
    assert finished.startswith("HTTP/2 201"), finished

    output = tmp_path / "blob"
    curl(certificates, "--output", str(output), f"{tls_proxy.url}/v2/{repository}/blobs/{digest}")
    assert output.read_bytes() == content
    http2_requests = [line for line in tls_proxy.access_log() if repository in line and "HTTP/2.0" in line]
    assert any('"PATCH ' in line and " 202 " in line for line in http2_requests), http2_requests


@pytest.fixture(scope="session")
def gib_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """1 GiB of random bytes in a file, and its digest."""
    path = tmp_path_factory.mktemp("gib") / "layer"
    hasher = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(GiB // (8 * MiB)):
            chunk = os.urandom(8 * MiB)
            hasher.update(chunk)
            file.write(chunk)
    yield path, f"sha256:{hasher.hexdigest()}"
    path.unlink()


def file_chunks(path: Path, size: int = MiB) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(size):
            yield chunk


@pytest.mark.slow
def test_one_gib_layer_pushed_and_pulled(
    proxy: Nginx,
    client: httpx.Client,
    proxied_registry: RunningRegistry,
    gib_file: tuple[Path, str],
    repository: str,
) -> None:
    path, expected = gib_file
    upload = Upload(client, repository).start()
    try:
        upload.patch_stream(file_chunks(path))  # one request streaming the whole layer, as docker does
        assert upload.finish() == expected
        assert download_digest(client, repository, expected) == (expected, GiB)
        assert "buffered to a temporary file" not in proxy.log()
    finally:
        shutil.rmtree(blob_dir(proxied_registry, expected), ignore_errors=True)
