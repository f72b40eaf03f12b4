"""Stock clients through each shipped site: docker, skopeo and podman push and pull.

Over TLS each client trusts the test CA the way operators configure it, and is first shown to
refuse the proxy without it; over plain HTTP they are told the registry is not TLS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.containers import ContainerTools
from tests.support.dockerd import Dockerd
from tests.support.images import (
    busybox_rootfs_tar,
    digest_of,
    every_blob,
    random_files,
    random_image,
    write_oci_layout,
)
from tests.support.nginx import Nginx
from tests.support.tls import ServerCertificates

from .conftest import REGISTRY_NAME

pytestmark = [pytest.mark.nginx, pytest.mark.clients, pytest.mark.slow]

PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
PULLED_DIGEST = re.compile(r"Digest: (sha256:[0-9a-f]{64})")
UNTRUSTED = "certificate signed by unknown authority"


def served_digest(client: httpx.Client, repository: str, reference: str) -> str:
    """The digest of the manifest the registry serves, computed from its bytes."""
    response = client.get(
        f"/v2/{repository}/manifests/{reference}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                           "application/vnd.oci.image.manifest.v1+json"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return digest_of(response.content)


def test_docker_login_push_pull(
    proxy: Nginx,
    client: httpx.Client,
    dockerd: Dockerd,
    certificates: ServerCertificates,
    repository: str,
    tmp_path: Path,
) -> None:
    # Over TLS docker gets a name outside 127.0.0.0/8, the only way it checks certificates.
    host = f"{REGISTRY_NAME}:{proxy.port}" if proxy.tls else proxy.host
    reference = f"{host}/{repository}:v1"
    rootfs = busybox_rootfs_tar(tmp_path / "rootfs.tar", {"etc/nonce": os.urandom(256 * 1024)})
    dockerd.docker("import", str(rootfs), reference)

    if proxy.tls:
        dockerd.trust(host, None)
        refused = dockerd.docker("push", reference, check=False)
        assert refused.returncode != 0
        assert UNTRUSTED in refused.stderr
        dockerd.trust(host, certificates.ca_cert)

    login = dockerd.docker("login", "--username", "anyone", "--password", "anything", host)
    assert "Login Succeeded" in login.stdout
    pushed = PUSHED_DIGEST.search(dockerd.docker("push", reference).stdout)
    assert pushed, "docker push printed no digest"
    assert served_digest(client, repository, "v1") == pushed.group(1)

    dockerd.docker("rmi", reference)
    pulled = PULLED_DIGEST.search(dockerd.docker("pull", reference).stdout)
    assert pulled, "docker pull printed no digest"
    assert pulled.group(1) == pushed.group(1)
    if proxy.tls:  # docker pushed and pulled through nginx, over IPv6 and TLS
        from_docker = [line for line in tls_lines(proxy, repository) if line.startswith("::1 ")]
        assert any('"PUT ' in line and "/manifests/v1 " in line for line in from_docker), from_docker
        assert any('"GET ' in line and "/blobs/sha256:" in line for line in from_docker), from_docker


def tls_lines(proxy: Nginx, repository: str) -> list[str]:
    lines = [line for line in proxy.access_log() if repository in line]
    assert all(" TLSv1.2 " in line or " TLSv1.3 " in line for line in lines), lines
    return lines


def run(tools: ContainerTools, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A podman/skopeo command exactly as given (no TLS flags added)."""
    result = subprocess.run(command, capture_output=True, text=True, env=tools.env, timeout=300, check=False)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def cert_dir(certificates: ServerCertificates, tmp_path: Path) -> Path:
    """A ``--cert-dir`` folder: the CA file alone."""
    folder = tmp_path / "certs.d"
    folder.mkdir()
    (folder / "ca.crt").write_bytes(certificates.ca_cert.read_bytes())
    return folder


def test_skopeo_copy_in_and_out(
    proxy: Nginx,
    client: httpx.Client,
    container_tools: ContainerTools,
    cert_dir: Path,
    repository: str,
    tmp_path: Path,
) -> None:
    image = random_image(layers=3)
    source = f"oci:{write_oci_layout(tmp_path / 'layout', {'v1': image})}:v1"
    reference = f"docker://{proxy.host}/{repository}:v1"
    if proxy.tls:
        refused = run(container_tools, "skopeo", "copy", source, reference, check=False)
        assert refused.returncode != 0
        assert UNTRUSTED in refused.stderr
        to, source_flag, one = (
            f"--dest-cert-dir={cert_dir}",
            f"--src-cert-dir={cert_dir}",
            f"--cert-dir={cert_dir}",
        )
    else:
        to, source_flag, one = "--dest-tls-verify=false", "--src-tls-verify=false", "--tls-verify=false"

    digest_file = tmp_path / "digest"
    run(container_tools, "skopeo", "copy", to, "--digestfile", str(digest_file), source, reference)
    assert digest_file.read_text() == image.digest
    assert served_digest(client, repository, "v1") == image.digest
    inspected = json.loads(run(container_tools, "skopeo", "inspect", one, reference).stdout)
    assert inspected["Digest"] == image.digest

    run(container_tools, "skopeo", "copy", source_flag, reference, f"oci:{tmp_path / 'out'}:copied")
    copied = tmp_path / "out" / "blobs" / "sha256"
    assert {f"sha256:{path.name}" for path in copied.iterdir()} == {blob.digest for blob in every_blob(image)}
    for path in copied.iterdir():
        assert digest_of(path.read_bytes()) == f"sha256:{path.name}"
    if proxy.tls:
        tls_lines(proxy, repository)


def test_podman_push_pull(
    proxy: Nginx,
    client: httpx.Client,
    container_tools: ContainerTools,
    cert_dir: Path,
    repository: str,
    tmp_path: Path,
) -> None:
    local = f"localhost/{repository}:built"
    image_id = container_tools.build_scratch_image(
        local, [random_files(2, 64 * 1024), random_files(1, 128 * 1024)]
    )
    reference = f"{proxy.host}/{repository}:v1"
    trust = f"--cert-dir={cert_dir}" if proxy.tls else "--tls-verify=false"
    if proxy.tls:
        refused = run(container_tools, "podman", "push", local, f"docker://{reference}", check=False)
        assert refused.returncode != 0
        assert UNTRUSTED in refused.stderr

    digest_file = tmp_path / "digest"
    run(
        container_tools,
        "podman",
        "push",
        trust,
        "--digestfile",
        str(digest_file),
        local,
        f"docker://{reference}",
    )
    pushed = digest_file.read_text().strip()
    assert served_digest(client, repository, "v1") == pushed

    run(container_tools, "podman", "rmi", local)
    run(container_tools, "podman", "pull", trust, reference)
    pulled = json.loads(run(container_tools, "podman", "image", "inspect", reference).stdout)[0]
    assert pulled["Id"] == image_id
    assert pulled["Digest"] == pushed
    run(container_tools, "podman", "rmi", reference)
    if proxy.tls:
        tls_lines(proxy, repository)
