"""Running the lifecycle commands as an operator does, and reading what a root holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.images import Image, ImageIndex
from tests.support.pushing import push_manifest
from tests.support.registry import PROJECT
from tests.support.served import Served

GC_AREA = ("docker", "registry", "v2", "_dockyard", "gc")
TEMP_PREFIX = ".dockyard-"


def dockyard(
    config: Path, command: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``dockyard COMMAND CONFIG ARGS...`` in a process of its own; never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "registry", command, str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT,
        check=False,
    )


def garbage_collect(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    done = dockyard(config, "garbage-collect", *flags)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done


def stored_files(root: Path) -> set[str]:
    """Every file of the layout below ``root`` (relative), without the collector's own records and
    in-flight temp files (not walked into: a serving registry renames them into place at any
    moment, and ``os.walk`` skips a directory gone by the time it is listed)."""
    found: set[str] = set()
    for directory, subdirectories, names in os.walk(root):
        parts = Path(directory).relative_to(root).parts
        if parts[: len(GC_AREA)] == GC_AREA:
            subdirectories.clear()
            continue
        subdirectories[:] = [name for name in subdirectories if not name.startswith(TEMP_PREFIX)]
        found.update("/".join((*parts, name)) for name in names if not name.startswith(TEMP_PREFIX))
    return found


def blob_file(digest: str) -> str:
    algorithm, encoded = digest.split(":")
    return f"docker/registry/v2/blobs/{algorithm}/{encoded[:2]}/{encoded}/data"


def revision_file(repository: str, digest: str) -> str:
    algorithm, encoded = digest.split(":")
    return f"docker/registry/v2/repositories/{repository}/_manifests/revisions/{algorithm}/{encoded}/link"


def push(served: Served, repository: str, reference: str, content: Image | ImageIndex) -> str:
    """Push ``content`` (an index: its images by digest first) under ``reference``; its digest."""
    if isinstance(content, ImageIndex):
        for image in content.images:
            push(served, repository, image.digest, image)
    else:
        for blob in content.blobs:
            push_blob(served.http, repository, blob.data, blob.digest)
    manifest = content.manifest
    return push_manifest(served.http, repository, reference, manifest.data, manifest.media_type)


def push_beside_collections(
    served: Served, repository: str, reference: str, image: Image, attempts: int = 10
) -> str:
    """``push`` of an image while collections run at ``--grace-period 0s``: one may take a blob
    uploaded for a manifest not yet pushed, and the registry then refuses the manifest with
    MANIFEST_BLOB_UNKNOWN (its safe outcome); the image is pushed again from the start, as a
    client does. Its digest."""
    manifest = image.manifest
    for _attempt in range(attempts):
        for blob in image.blobs:
            push_blob(served.http, repository, blob.data, blob.digest)
        response = served.http.put(
            f"/v2/{repository}/manifests/{reference}",
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        if response.status_code == 201:
            return response.headers["Docker-Content-Digest"]
        assert response.status_code == 400, (response.status_code, response.text)
        assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", response.text
    raise AssertionError(f"{repository}:{reference} refused {attempts} times")


def push_blob(http: httpx.Client, repository: str, data: bytes, digest: str) -> None:
    """POST, then PUT with the digest: the monolithic upload every registry (Distribution too) takes."""
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]  # Distribution's carries its upload state in the query
    separator = "&" if "?" in location else "?"
    finished = http.put(f"{location}{separator}digest={digest}", content=data)
    assert finished.status_code == 201, finished.text


def age_tag(root: Path, repository: str, tag: str, seconds: float) -> None:
    """Make a tag look pushed ``seconds`` ago (its link, and its push record when it has one)."""
    then = time.time() - seconds
    for path in (
        root / "docker/registry/v2/repositories" / repository / "_manifests/tags" / tag / "current/link",
        root / "docker/registry/v2/repositories" / repository / "_dockyard/tags" / tag / "pushed",
    ):
        if path.exists():
            os.utime(path, (then, then))
