"""skopeo against the registry: copy in and out, inspect, list-tags, delete, --all for indexes."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.containers import ContainerTools
from tests.support.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    digest_of,
    every_blob,
    multi_arch_index,
    random_image,
    read_dir_layout,
    write_dir_layout,
    write_docker_archive,
    write_oci_layout,
)
from tests.support.served import RegistryEndpoint, Served

pytestmark = pytest.mark.clients


def test_copy_oci_layout_in_inspect_and_copy_out(
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    image = random_image(layers=3)
    write_oci_layout(tmp_path / "layout", {"v1": image})
    repository = new_repository("oci")
    reference = f"docker://{target_registry.host}/{repository}:v1"

    layout = f"oci:{tmp_path / 'layout'}:v1"
    container_tools.skopeo("copy", "--digestfile", str(tmp_path / "digest"), layout, reference)

    # Copied unchanged: the registry holds exactly our manifest, config and layers.
    assert (tmp_path / "digest").read_text() == image.digest
    assert served.manifest(repository, "v1").data == image.manifest.data
    assert set(served.verify_tree(repository, "v1")) == {b.digest for b in every_blob(image)}
    inspected = json.loads(container_tools.skopeo("inspect", reference).stdout)
    assert inspected["Digest"] == image.digest
    assert inspected["Layers"] == [layer.blob.digest for layer in image.layers]
    assert inspected["Architecture"] == "amd64"
    assert container_tools.skopeo("inspect", "--raw", reference).stdout.encode() == image.manifest.data

    container_tools.skopeo("copy", reference, f"oci:{tmp_path / 'out'}:copied")
    out_index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [entry["digest"] for entry in out_index["manifests"]] == [image.digest]
    for blob in every_blob(image):
        stored = tmp_path / "out" / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
        assert stored.read_bytes() == blob.data


def test_copy_large_layers_in_and_out(
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """Layers of several MiB: bodies large enough for the registry to read them past its HTTP
    parser, from a stock client, whole and in order."""
    image = random_image(layers=2, layer_size=3 << 20)
    assert all(len(layer.blob.data) > 4 << 20 for layer in image.layers)
    write_oci_layout(tmp_path / "layout", {"v1": image})
    repository = new_repository("large")
    reference = f"docker://{target_registry.host}/{repository}:v1"
    container_tools.skopeo("copy", f"oci:{tmp_path / 'layout'}:v1", reference)
    assert set(served.verify_tree(repository, "v1")) == {b.digest for b in every_blob(image)}
    container_tools.skopeo("copy", reference, f"oci:{tmp_path / 'out'}:copied")
    for blob in every_blob(image):
        stored = tmp_path / "out" / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
        assert stored.read_bytes() == blob.data


def test_copy_docker_archive_in_and_out(
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    image = random_image(layers=2, docker=True)
    repository = new_repository("archive")
    archive = write_docker_archive(tmp_path / "image.tar", image, f"{repository}:v1")
    reference = f"docker://{target_registry.host}/{repository}:v1"

    source = f"docker-archive:{archive}"
    container_tools.skopeo("copy", "--digestfile", str(tmp_path / "digest"), source, reference)

    pushed = (tmp_path / "digest").read_text()
    manifest = served.manifest(repository, "v1")
    assert manifest.digest == pushed
    assert manifest.media_type == DOCKER_MANIFEST
    served.verify_tree(repository, "v1")
    # skopeo compressed the layers itself; the config (and so the diff IDs) is ours unchanged.
    assert manifest.document["config"]["digest"] == image.config.digest
    for descriptor, layer in zip(manifest.document["layers"], image.layers, strict=True):
        blob = served.http.get(f"/v2/{repository}/blobs/{descriptor['digest']}").content
        assert digest_of(gzip.decompress(blob)) == layer.diff_id
    assert json.loads(container_tools.skopeo("inspect", reference).stdout)["Digest"] == pushed

    out = tmp_path / "out.tar"
    container_tools.skopeo("copy", reference, f"docker-archive:{out}:{repository}:v1")
    with tarfile.open(out) as saved:
        saved_manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = saved.extractfile(saved_manifest[0]["Config"]).read()  # type: ignore[union-attr]
        layer_digests = [
            "sha256:" + hashlib.sha256(saved.extractfile(name).read()).hexdigest()  # type: ignore[union-attr]
            for name in saved_manifest[0]["Layers"]
        ]
    assert config == image.config.data
    assert layer_digests == [layer.diff_id for layer in image.layers]


def test_list_tags(
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    image = random_image(layers=1)
    write_oci_layout(tmp_path / "layout", {"v1": image})
    repository = new_repository("tags")
    base = f"docker://{target_registry.host}/{repository}"
    container_tools.skopeo("copy", f"oci:{tmp_path / 'layout'}:v1", f"{base}:v1")
    for tag in ("v2", "latest", "1.0.0"):  # registry to registry: every blob already there
        container_tools.skopeo("copy", f"{base}:v1", f"{base}:{tag}")

    listed = json.loads(container_tools.skopeo("list-tags", base).stdout)
    assert listed["Repository"] == f"{target_registry.host}/{repository}"
    assert sorted(listed["Tags"]) == ["1.0.0", "latest", "v1", "v2"]
    assert sorted(served.tags(repository)) == ["1.0.0", "latest", "v1", "v2"]
    for tag in ("v2", "latest", "1.0.0"):
        assert served.manifest(repository, tag).digest == image.digest


def test_delete_then_not_found(
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    keep, doomed = random_image(layers=1), random_image(layers=1)
    write_oci_layout(tmp_path / "layout", {"keep": keep, "doomed": doomed})
    repository = new_repository("delete")
    base = f"docker://{target_registry.host}/{repository}"
    for tag in ("keep", "doomed"):
        container_tools.skopeo("copy", f"oci:{tmp_path / 'layout'}:{tag}", f"{base}:{tag}")

    container_tools.skopeo("delete", f"{base}:doomed")

    assert served.status("GET", f"/v2/{repository}/manifests/{doomed.digest}") == 404
    assert served.status("HEAD", f"/v2/{repository}/manifests/doomed") == 404
    failed = container_tools.skopeo("inspect", f"{base}:doomed", check=False)
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr.lower()
    assert served.tags(repository) == ["keep"]
    served.verify_tree(repository, "keep")


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-manifest-list"])
def test_copy_all_multi_arch(
    docker: bool,
    container_tools: ContainerTools,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    index = multi_arch_index(layers=2, docker=docker)
    # OCI layouts hold only OCI media types; skopeo's dir: format holds Docker lists too.
    source = (
        f"dir:{write_dir_layout(tmp_path / 'source', index)}"
        if docker
        else f"oci:{write_oci_layout(tmp_path / 'source', {'multi': index})}:multi"
    )
    repository = new_repository("multi")
    reference = f"docker://{target_registry.host}/{repository}:multi"

    container_tools.skopeo("copy", "--all", "--digestfile", str(tmp_path / "digest"), source, reference)

    assert (tmp_path / "digest").read_text() == index.digest
    expected = {blob.digest for blob in every_blob(index)}
    verified = served.verify_tree(repository, "multi")
    assert set(verified) == expected
    assert verified[index.digest] == (DOCKER_LIST if docker else OCI_INDEX)
    assert served.manifest(repository, "multi").data == index.manifest.data
    raw = container_tools.skopeo("inspect", "--raw", reference).stdout.encode()
    assert raw == index.manifest.data
    arm = json.loads(
        container_tools.run(
            "skopeo",
            "--override-arch",
            "arm64",
            "--override-variant",
            "v8",
            "inspect",
            "--tls-verify=false",
            reference,
        ).stdout
    )
    assert arm["Digest"] == index.digest  # skopeo reports the list; the rest is the arm64 image
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == [layer.blob.digest for layer in index.images[1].layers]

    container_tools.skopeo("copy", "--all", reference, f"dir:{tmp_path / 'out'}")
    assert read_dir_layout(tmp_path / "out") == expected
