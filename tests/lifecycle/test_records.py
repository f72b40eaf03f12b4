"""Tag pull records: written on pull after the worker's flush, shared by two server processes on
one root, gone with the tag, and read back by the reader retention and the web interface use. A
push writes no record: its time is the tag's current link's, which every push rewrites."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from registry.lifecycle.records import TagTimes, read_tag_times
from registry.references import RepositoryName, Tag
from storage_drivers import create_driver
from tests.support.containers import ContainerTools
from tests.support.dockerd import Dockerd
from tests.support.images import busybox_rootfs_tar, random_image, write_oci_layout
from tests.support.registry import StartRegistry, merge
from tests.support.served import Served

FAST_FLUSH = {"storage": {"maintenance": {"pullrecords": {"flushinterval": "1s"}}}}
RECORDS = "docker/registry/v2/repositories/{name}/_dockyard/tags/{tag}"


def _records(root: Path, name: str, tag: str) -> Path:
    return root / RECORDS.format(name=name, tag=tag)


def _current_link(root: Path, name: str, tag: str) -> Path:
    return root / f"docker/registry/v2/repositories/{name}/_manifests/tags/{tag}/current/link"


def _wait_for(path: Path, newer_than: float = 0.0) -> float:
    """The file's modification time once it exists (and is newer than ``newer_than``)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime > newer_than:
            return path.stat().st_mtime
        time.sleep(0.2)
    raise AssertionError(f"{path} was not written (newer than {newer_than})")


def _times(root: Path, name: str) -> dict[Tag, TagTimes]:
    async def read() -> dict[Tag, TagTimes]:
        driver = create_driver("filesystem", {"rootdirectory": str(root)})
        try:
            return await read_tag_times(driver, RepositoryName(name))
        finally:
            await driver.close()

    return asyncio.run(read())


def test_push_and_pull_records_shared_by_replicas(
    start_registry: StartRegistry, container_tools: ContainerTools, tmp_path: Path
) -> None:
    first = start_registry(FAST_FLUSH)
    second = start_registry(merge(FAST_FLUSH, {"storage": first.storage}))
    root = first.root
    image, other = random_image(layers=2), random_image(layers=1)
    layout = write_oci_layout(tmp_path / "layout", {"v1": image, "v2": other})

    container_tools.skopeo("copy", f"oci:{layout}:v1", f"docker://{first.host}/rec/app:v1")
    pushed = _current_link(root, "rec/app", "v1")
    assert pushed.read_text() == image.digest
    assert not _records(root, "rec/app", "v1").exists()  # the push time is the link's
    container_tools.skopeo("copy", f"oci:{layout}:v2", f"docker://{second.host}/rec/app:v2")
    assert _current_link(root, "rec/app", "v2").read_text() == other.digest
    assert not _records(root, "rec/app", "v2").exists()

    # A pull through the other replica is recorded in the shared storage after its flush.
    container_tools.skopeo("inspect", f"docker://{second.host}/rec/app:v1")
    pulled_at = _wait_for(_records(root, "rec/app", "v1") / "pulled")
    assert _times(root, "rec/app") == {Tag("v1"): TagTimes(None, pulled_at)}

    # HEAD by tag (how containerd resolves a tag) is a pull too, through either replica; pulls
    # by digest name no tag and record nothing.
    with Served(first.url) as served:
        assert served.status("HEAD", "/v2/rec/app/manifests/v2") == 200
        assert served.status("GET", f"/v2/rec/app/manifests/{image.digest}") == 200
        assert served.status("GET", "/v2/rec/app/manifests/missing") == 404
    _wait_for(_records(root, "rec/app", "v2") / "pulled")
    assert not _records(root, "rec/app", "missing").exists()

    # A pushed tag moved by a new push gets a newer push time: its current link is written again.
    before = pushed.stat().st_mtime
    time.sleep(0.05)  # filesystem timestamps must be able to differ
    container_tools.skopeo("copy", f"oci:{layout}:v2", f"docker://{first.host}/rec/app:v1")
    assert pushed.stat().st_mtime > before
    assert pushed.read_text() == other.digest
    assert not (_records(root, "rec/app", "v1") / "pushed").exists()

    # Deleting a tag through the API deletes its records.
    with Served(second.url) as served:
        assert served.status("DELETE", "/v2/rec/app/manifests/v1") == 202
    assert not _records(root, "rec/app", "v1").exists()
    assert set(_times(root, "rec/app")) == {Tag("v2")}


def test_docker_push_and_pull_are_recorded(
    start_registry: StartRegistry, dockerd: Dockerd, tmp_path: Path
) -> None:
    registry = start_registry(FAST_FLUSH)
    reference = f"{registry.host}/rec/docker:v1"
    rootfs = busybox_rootfs_tar(tmp_path / "rootfs.tar", {"etc/nonce": os.urandom(4096)})
    dockerd.docker("import", str(rootfs), reference)
    dockerd.docker("push", reference)
    link = _current_link(registry.root, "rec/docker", "v1")
    pushed_at = link.stat().st_mtime  # read from storage: a GET by tag would be a pull
    records = _records(registry.root, "rec/docker", "v1")
    assert not records.exists()  # the push's time is its current link's
    dockerd.docker("rmi", reference)
    dockerd.docker("pull", reference)
    pulled_at = _wait_for(records / "pulled")
    assert _times(registry.root, "rec/docker") == {Tag("v1"): TagTimes(None, pulled_at)}
    assert link.stat().st_mtime == pushed_at  # a pull leaves the push time alone
    dockerd.docker("rmi", reference)
