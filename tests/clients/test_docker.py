"""Stock Docker (Debian's docker.io, a private dockerd): import, build, push, rmi, pull."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.containers import ContainerTools
from tests.support.dockerd import Dockerd
from tests.support.images import DOCKER_MANIFEST, busybox_rootfs_tar, multi_arch_index, write_dir_layout
from tests.support.served import RegistryEndpoint, Served

pytestmark = [pytest.mark.clients, pytest.mark.slow]

PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")
PULLED_DIGEST = re.compile(r"Digest: (sha256:[0-9a-f]{64})")


def push(dockerd: Dockerd, reference: str) -> tuple[str, str]:
    """``docker push``; returns the digest it reports and its whole output."""
    output = dockerd.docker("push", reference).stdout
    found = PUSHED_DIGEST.search(output)
    assert found, output
    return found.group(1), output


def inspect_image(dockerd: Dockerd, reference: str) -> dict[str, Any]:
    inspected: dict[str, Any] = json.loads(dockerd.docker("image", "inspect", reference).stdout)[0]
    return inspected


def remove_then_pull(dockerd: Dockerd, reference: str) -> str:
    """Forget the image locally, pull it back; returns the digest the pull reports."""
    dockerd.docker("rmi", reference)
    assert dockerd.docker("image", "inspect", reference, check=False).returncode != 0
    output = dockerd.docker("pull", reference).stdout
    found = PULLED_DIGEST.search(output)
    assert found, output
    return found.group(1)


def assert_served(served: Served, repository: str, tag: str, digest: str) -> dict[str, Any]:
    manifest = served.manifest(repository, tag)
    assert manifest.digest == digest
    assert manifest.media_type == DOCKER_MANIFEST
    served.verify_tree(repository, tag)
    return manifest.document


def test_import_push_rmi_pull(
    dockerd: Dockerd,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    nonce = os.urandom(64 * 1024)
    rootfs = busybox_rootfs_tar(tmp_path / "rootfs.tar", {"etc/nonce": nonce})
    repository = new_repository("imported")
    reference = f"{target_registry.host}/{repository}:imported"
    dockerd.docker("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), reference)
    local = inspect_image(dockerd, reference)

    digest, _ = push(dockerd, reference)

    document = assert_served(served, repository, "imported", digest)
    assert len(document["layers"]) == 1
    assert document["config"]["digest"] == local["Id"]
    assert remove_then_pull(dockerd, reference) == digest
    pulled = inspect_image(dockerd, reference)
    assert pulled["RepoDigests"] == [f"{target_registry.host}/{repository}@{digest}"]
    assert pulled["Id"] == local["Id"]
    # The single layer is our tar, byte for byte.
    tar_digest = "sha256:" + hashlib.sha256(rootfs.read_bytes()).hexdigest()
    assert pulled["RootFS"]["Layers"] == [tar_digest]


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FROM-scratch Dockerfile with two COPY layers of fresh random content."""
    context = tmp_path_factory.mktemp("docker-build")
    (context / "bin").mkdir()
    (context / "bin" / "tool").write_bytes(os.urandom(512 * 1024))
    (context / "data.bin").write_bytes(os.urandom(256 * 1024))
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY bin/ /usr/local/bin/\n"
        "COPY data.bin /srv/data.bin\n"
        "ENV APP_MODE=test APP_PORT=8080\n"
        'LABEL org.example.suite="clients" org.example.kind="build"\n'
        'CMD ["/usr/local/bin/tool", "--serve"]\n'
    )
    return context


def test_build_push_rmi_pull(
    dockerd: Dockerd,
    build_context: Path,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
) -> None:
    repository = new_repository("built")
    reference = f"{target_registry.host}/{repository}:1.0"
    dockerd.docker("build", "--quiet", "-t", reference, str(build_context))
    local = inspect_image(dockerd, reference)

    digest, _ = push(dockerd, reference)

    document = assert_served(served, repository, "1.0", digest)
    assert len(document["layers"]) == 2
    assert remove_then_pull(dockerd, reference) == digest
    pulled = inspect_image(dockerd, reference)
    assert pulled["RepoDigests"] == [f"{target_registry.host}/{repository}@{digest}"]
    assert pulled["Id"] == local["Id"]
    assert pulled["RootFS"]["Layers"] == local["RootFS"]["Layers"]
    assert {"APP_MODE=test", "APP_PORT=8080"} <= set(pulled["Config"]["Env"])
    assert pulled["Config"]["Labels"] == {
        "org.example.suite": "clients",
        "org.example.kind": "build",
    }
    assert pulled["Config"]["Cmd"] == ["/usr/local/bin/tool", "--serve"]


def test_push_second_image_sharing_layers(
    dockerd: Dockerd,
    build_context: Path,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    base_repository = new_repository("base")
    base = f"{target_registry.host}/{base_repository}:1"
    dockerd.docker("build", "--quiet", "-t", base, str(build_context))
    base_digest, _ = push(dockerd, base)
    base_layers = assert_served(served, base_repository, "1", base_digest)["layers"]

    (tmp_path / "extra.txt").write_bytes(os.urandom(32 * 1024))
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nCOPY extra.txt /srv/extra.txt\n")
    app_repository = new_repository("app")
    app = f"{target_registry.host}/{app_repository}:1"
    dockerd.docker("build", "--quiet", "-t", app, str(tmp_path))

    app_digest, output = push(dockerd, app)

    # Docker knows the base layers came from the other repository and mounts them from there.
    assert output.count(f"Mounted from {base_repository}") == len(base_layers), output
    app_layers = assert_served(served, app_repository, "1", app_digest)["layers"]
    assert app_layers[: len(base_layers)] == base_layers
    assert len(app_layers) == len(base_layers) + 1

    # A second tag of the same image: every layer is found by the existence check.
    again = f"{target_registry.host}/{app_repository}:again"
    dockerd.docker("tag", app, again)
    again_digest, output = push(dockerd, again)
    assert again_digest == app_digest
    assert output.count("Layer already exists") == len(app_layers), output
    assert sorted(served.tags(app_repository)) == ["1", "again"]


@pytest.mark.parametrize("docker_list", [False, True], ids=["oci-index", "docker-manifest-list"])
def test_pull_multi_arch_picks_the_daemon_platform(
    docker_list: bool,
    dockerd: Dockerd,
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    index = multi_arch_index(layers=2, docker=docker_list)
    repository = new_repository("multi")
    reference = f"{target_registry.host}/{repository}:multi"
    container_tools.skopeo(
        "copy", "--all", f"dir:{write_dir_layout(tmp_path / 'source', index)}", f"docker://{reference}"
    )

    output = dockerd.docker("pull", reference).stdout

    assert f"Digest: {index.digest}" in output, output
    pulled = inspect_image(dockerd, reference)
    amd64 = index.images[0]
    assert pulled["Architecture"] == "amd64"
    assert pulled["Id"] == amd64.config.digest
    assert pulled["RootFS"]["Layers"] == [layer.diff_id for layer in amd64.layers]
    assert pulled["RepoDigests"] == [f"{target_registry.host}/{repository}@{index.digest}"]
