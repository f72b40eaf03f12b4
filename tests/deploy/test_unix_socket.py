"""The registry on a unix socket (``http.net: unix``) behind the shipped TLS site, whose upstream
names the socket: the one line an operator changes. The socket has no peer address: the
registry believes the proxy's ``X-Forwarded-*`` over it, so Location URLs keep the https scheme."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.containers import ContainerTools
from tests.support.images import digest_of, every_blob, random_image, write_oci_layout
from tests.support.launcher import CLEAN_ENV, DOCKYARD, wait_for_socket, write_config
from tests.support.nginx import TLS_SITE, Nginx
from tests.support.processes import ServerProcess
from tests.support.tls import ServerCertificates
from tests.support.waiting import until

from .conftest import trusting
from .flows import Upload

pytestmark = pytest.mark.nginx


def serve_on_socket(workdir: Path, path: Path, **http: object) -> ServerProcess:
    config = write_config(
        workdir / "config.yml",
        {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
            "http": {"net": "unix", "addr": str(path), **http},
        },
    )
    command = [DOCKYARD, "serve", str(config), "--workers", "2"]
    return ServerProcess(command, workdir / "serve.log", env=CLEAN_ENV)


@pytest.fixture(scope="module")
def socket_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    workdir = tmp_path_factory.mktemp("unix")
    path = workdir / "registry.sock"
    # The test clients connect from loopback: trusted as proxies by default, so none here.
    process = serve_on_socket(workdir, path, trustedproxies=["10.99.0.0/16"])
    try:
        wait_for_socket(process, path)
        yield path, process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def socket_path(socket_registry: tuple[Path, ServerProcess]) -> Path:
    return socket_registry[0]


@pytest.fixture(scope="module")
def unix_proxy(
    start_nginx: Callable[..., Nginx], socket_path: Path, certificates: ServerCertificates
) -> Nginx:
    return start_nginx(TLS_SITE, f"unix:{socket_path}", certificates)


@pytest.fixture
def client(unix_proxy: Nginx, certificates: ServerCertificates) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=unix_proxy.url, verify=trusting(certificates), timeout=120) as http:
        yield http


def test_the_socket_is_for_the_registrys_user_and_group(socket_path: Path) -> None:
    mode = socket_path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_push_and_pull_through_the_tls_site(client: httpx.Client, unix_proxy: Nginx) -> None:
    repository = f"unix/r-{os.urandom(4).hex()}"
    content = os.urandom(9 * (1 << 20) + 17)
    upload = Upload(client, repository).start()
    # The proxy's X-Forwarded-Proto is believed over the socket: the scheme clients used.
    assert upload.location.startswith(f"https://{unix_proxy.host}/v2/{repository}/blobs/uploads/")
    digest = upload.finish(content)
    assert digest == f"sha256:{hashlib.sha256(content).hexdigest()}"

    pulled = hashlib.sha256()
    with client.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == digest
        for piece in response.iter_bytes():
            pulled.update(piece)
    assert f"sha256:{pulled.hexdigest()}" == digest
    ranged = client.get(f"/v2/{repository}/blobs/{digest}", headers={"Range": "bytes=5-9"})
    assert (ranged.status_code, ranged.content) == (206, content[5:10])


def test_a_client_cannot_name_itself_in_the_log(
    client: httpx.Client, socket_registry: tuple[Path, ServerProcess]
) -> None:
    """The site appends the address it saw to the client's ``X-Forwarded-For``: the registry logs
    that one, not the one the client wrote."""
    _, process = socket_registry
    response = client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    lines = until(lambda: [line for line in process.log().splitlines() if f"request_id={request_id}" in line])
    assert 'registry.access: 127.0.0.1 - "GET /v2/" 200' in lines[0], lines
    assert "203.0.113.9" not in process.log()


def test_a_stale_socket_is_replaced_and_removed_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "registry.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))  # left behind as by a registry that was killed
    process = serve_on_socket(tmp_path, path)
    try:
        wait_for_socket(process, path)
    finally:
        process.stop()
    assert not path.exists()


def test_another_file_at_the_path_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "registry.sock"
    path.write_text("not a socket")
    process = serve_on_socket(tmp_path, path)
    try:
        process.process.wait(timeout=30)
    finally:
        process.stop()
    assert process.process.returncode != 0
    assert f"cannot listen on {path}" in process.log()
    assert path.read_text() == "not a socket"


def skopeo(tools: ContainerTools, *args: str) -> None:
    """skopeo exactly as given: it trusts the test CA through ``--*-cert-dir``."""
    ran = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, env=tools.env, timeout=300, check=False
    )
    assert ran.returncode == 0, f"skopeo {' '.join(args)}\n{ran.stderr}"


@pytest.mark.clients
def test_skopeo_copies_in_and_out_through_the_site_as_shipped(
    unix_proxy: Nginx,
    client: httpx.Client,
    container_tools: ContainerTools,
    certificates: ServerCertificates,
    tmp_path: Path,
) -> None:
    cert_dir = tmp_path / "certs.d"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(certificates.ca_cert.read_bytes())
    image = random_image(layers=3)
    source = f"oci:{write_oci_layout(tmp_path / 'layout', {'v1': image})}:v1"
    repository = f"unix/skopeo-{os.urandom(4).hex()}"
    reference = f"docker://{unix_proxy.host}/{repository}:v1"
    digest_file = tmp_path / "digest"
    skopeo(
        container_tools,
        "copy",
        f"--dest-cert-dir={cert_dir}",
        "--digestfile",
        str(digest_file),
        source,
        reference,
    )
    assert digest_file.read_text() == image.digest
    served = client.get(f"/v2/{repository}/manifests/v1", headers={"Accept": image.manifest.media_type})
    assert digest_of(served.content) == image.digest

    out = tmp_path / "out"
    skopeo(container_tools, "copy", f"--src-cert-dir={cert_dir}", reference, f"oci:{out}:copied")
    copied = out / "blobs" / "sha256"
    assert {f"sha256:{path.name}" for path in copied.iterdir()} == {blob.digest for blob in every_blob(image)}
    for path in copied.iterdir():
        assert digest_of(path.read_bytes()) == f"sha256:{path.name}"
