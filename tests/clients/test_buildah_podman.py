"""buildah and podman against the registry: multi-layer images and manifest lists."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.containers import ContainerTools
from tests.support.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    random_files,
)
from tests.support.served import RegistryEndpoint, Served

pytestmark = pytest.mark.clients

MANIFEST_TYPE = {"v2s2": DOCKER_MANIFEST, "oci": OCI_MANIFEST}
LIST_TYPE = {"v2s2": DOCKER_LIST, "oci": OCI_INDEX}
IMAGE_CONFIG = {
    "--env": "GREETING=hello",
    "--label": "org.example.suite=clients",
    "--cmd": "/app/run",
}


@dataclass(frozen=True)
class BuiltImage:
    name: str
    files: dict[str, bytes]
    diff_ids: list[str]
    architecture: str


def build(container_tools: ContainerTools, architecture: str = "amd64", variant: str = "") -> BuiltImage:
    """Three layers of fresh random files, FROM scratch, with env/label/cmd set."""
    layers = [random_files(2, 256 * 1024, prefix=f"layer{number}") for number in range(3)]
    name = f"localhost/clients/built-{os.urandom(4).hex()}:{architecture}"
    container_tools.build_scratch_image(name, layers, IMAGE_CONFIG, arch=architecture, variant=variant)
    inspected = inspect_image(container_tools, name)
    assert inspected["Architecture"] == architecture
    files = {path: content for layer in layers for path, content in layer.items()}
    return BuiltImage(name, files, inspected["RootFS"]["Layers"], architecture)


def inspect_image(container_tools: ContainerTools, name: str) -> dict[str, Any]:
    inspected: dict[str, Any] = json.loads(container_tools.podman("image", "inspect", name).stdout)[0]
    return inspected


def assert_same_files(container_tools: ContainerTools, name: str, files: dict[str, bytes]) -> None:
    """Mount the image read-only in its store and compare every file byte for byte."""
    mountpoint = Path(container_tools.podman("image", "mount", name).stdout.strip())
    try:
        for path, content in files.items():
            assert (mountpoint / path).read_bytes() == content, path
    finally:
        container_tools.podman("image", "unmount", name)


@pytest.fixture(scope="module")
def built_image(container_tools: ContainerTools) -> BuiltImage:
    return build(container_tools)


@pytest.fixture(scope="module")
def platform_images(container_tools: ContainerTools) -> list[BuiltImage]:
    return [build(container_tools, "amd64"), build(container_tools, "arm64", "v8")]


@pytest.mark.parametrize(
    ("pusher", "puller", "push_format"),
    [("buildah", "podman", "v2s2"), ("podman", "buildah", "oci")],
)
def test_multi_layer_image_push_and_pull_into_fresh_storage(
    pusher: str,
    puller: str,
    push_format: str,
    built_image: BuiltImage,
    container_tools: ContainerTools,
    fresh_container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    repository = new_repository(push_format)
    reference = f"{target_registry.host}/{repository}:v1"

    container_tools.run(
        pusher,
        "push",
        "--format",
        push_format,
        "--digestfile",
        str(tmp_path / "digest"),
        built_image.name,
        f"docker://{reference}",
    )

    pushed = (tmp_path / "digest").read_text().strip()
    manifest = served.manifest(repository, "v1")
    assert manifest.digest == pushed
    assert manifest.media_type == MANIFEST_TYPE[push_format]
    assert len(manifest.document["layers"]) == 3
    served.verify_tree(repository, "v1")

    fresh_container_tools.run(puller, "pull", f"docker://{reference}")
    pulled = inspect_image(fresh_container_tools, reference)
    assert pulled["Digest"] == pushed
    assert f"{target_registry.host}/{repository}@{pushed}" in pulled["RepoDigests"]
    assert pulled["RootFS"]["Layers"] == built_image.diff_ids
    assert "GREETING=hello" in pulled["Config"]["Env"]
    assert pulled["Config"]["Labels"]["org.example.suite"] == "clients"
    assert pulled["Config"]["Cmd"] == ["/app/run"]
    assert_same_files(fresh_container_tools, reference, built_image.files)


@pytest.mark.parametrize("push_format", ["oci", "v2s2"])
def test_manifest_list_push_all(
    push_format: str,
    platform_images: list[BuiltImage],
    container_tools: ContainerTools,
    fresh_container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    list_name = f"localhost/clients/list-{os.urandom(4).hex()}"
    container_tools.buildah("manifest", "create", list_name)
    for image in platform_images:
        container_tools.buildah("manifest", "add", list_name, image.name)
    repository = new_repository(f"list-{push_format}")
    reference = f"{target_registry.host}/{repository}:multi"

    container_tools.buildah(
        "manifest",
        "push",
        "--all",
        "--format",
        push_format,
        "--digestfile",
        str(tmp_path / "digest"),
        list_name,
        f"docker://{reference}",
    )

    # buildah 1.28 exits 0 with an empty digest file when the push failed.
    pushed = (tmp_path / "digest").read_text().strip()
    assert pushed.startswith("sha256:")
    index = served.manifest(repository, "multi")
    assert index.digest == pushed
    assert index.media_type == LIST_TYPE[push_format]
    children = index.document["manifests"]
    assert [child["platform"]["architecture"] for child in children] == ["amd64", "arm64"]
    assert {child["mediaType"] for child in children} == {MANIFEST_TYPE[push_format]}
    verified = served.verify_tree(repository, "multi")
    assert len(verified) == 1 + 2 * (1 + 1 + 3)  # the list; per image: manifest, config, 3 layers
    raw = container_tools.skopeo("inspect", "--raw", f"docker://{reference}").stdout.encode()
    assert raw == index.data

    fresh_container_tools.podman("pull", "--arch", "arm64", f"docker://{reference}")
    pulled = inspect_image(fresh_container_tools, reference)
    assert pulled["Architecture"] == "arm64"
    assert pulled["RootFS"]["Layers"] == platform_images[1].diff_ids
    assert f"{target_registry.host}/{repository}@{children[1]['digest']}" in pulled["RepoDigests"]
    assert_same_files(fresh_container_tools, reference, platform_images[1].files)
