"""``kill -9`` of a server in the middle of its scheduled collection's sweep (filesystem).

The store holds live images (tagged, an index with untagged children) and thousands of untagged
manifests with their own blobs. The server is killed as soon as its run has begun deleting; it
runs under strace, which holds the unlinking of the junk blob deleted last, so the run cannot
be over by then however fast it is. Then, before anything else touches the root, no tag points
at a missing manifest and no manifest at a missing blob; the run's lease is still held by the
dead process. The server starts again: a push reusing a blob the dead run was deleting is
refused until that lease expires, then acknowledged; every live image pulls whole, and the next
run takes the lease over and finishes the job.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integrity.layout import check_layout
from tests.lifecycle.commands import blob_file, push, revision_file
from tests.support.images import digest_of, image_index, random_image
from tests.support.pushing import image_manifest, push_blob
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.served import Served
from tests.support.stall import held

pytestmark = pytest.mark.slow

JUNK_REPOSITORIES = 8
JUNK_PER_REPOSITORY = 500
WAIT = 240.0
"""Bound on waiting for runs on a loaded machine (not a timing assertion)."""
GC = Path("docker/registry/v2/_dockyard/gc")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def layer_link(repository: str, digest: str) -> str:
    algorithm, encoded = digest.split(":")
    return f"docker/registry/v2/repositories/{repository}/_layers/{algorithm}/{encoded}/link"


JUNK_CONFIG = b'{"architecture":"amd64","os":"linux"}'


def junk_files(repositories: int, per_repository: int) -> tuple[dict[str, bytes], list[tuple[str, str, str]]]:
    """Untagged manifests, each with a layer of its own (and a config they share), as a registry
    stores them: the files (relative path -> content), and (repository, manifest digest, layer
    digest) of each manifest."""
    files: dict[str, bytes] = {}
    made = []
    config = digest_of(JUNK_CONFIG)
    for r in range(repositories):
        repository = f"junk/r{r}"
        files[blob_file(config)] = JUNK_CONFIG
        files[layer_link(repository, config)] = config.encode()
        for _ in range(per_repository):
            layer = os.urandom(64)
            manifest = image_manifest(JUNK_CONFIG, [layer])
            files[blob_file(digest_of(layer))] = layer
            files[blob_file(digest_of(manifest))] = manifest
            files[layer_link(repository, digest_of(layer))] = digest_of(layer).encode()
            files[revision_file(repository, digest_of(manifest))] = digest_of(manifest).encode()
            made.append((repository, digest_of(manifest), digest_of(layer)))
    return files, made


def _write_junk(root: Path) -> list[tuple[str, str, str]]:
    files, made = junk_files(JUNK_REPOSITORIES, JUNK_PER_REPOSITORY)
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return made


def _state(root: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((root / GC / "state").read_text())
    return document


SCHEDULE = {"enabled": True, "interval": "2s", "graceperiod": "0s", "deleteuntagged": True}


def _schedule(registry: RunningRegistry) -> None:
    registry.config["storage"]["maintenance"] = {"garbagecollect": SCHEDULE}


def push_until_acknowledged(served: Served, repository: str, layer: bytes) -> int:
    """Push an image of ``layer`` (skipping its upload when HEAD says the repository has it) under
    ``rescued``; pushed again while refused, as the refusal tells clients to. How many times it
    was refused."""
    config = os.urandom(32)
    manifest = image_manifest(config, [layer])
    deadline = time.monotonic() + WAIT
    refused = 0
    while True:
        if served.status("HEAD", f"/v2/{repository}/blobs/{digest_of(layer)}") != 200:
            push_blob(served.http, repository, layer)
        push_blob(served.http, repository, config)
        response = served.http.put(
            f"/v2/{repository}/manifests/rescued", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        if response.status_code == 201:
            return refused
        refused += 1
        assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", response.text
        assert time.monotonic() < deadline, response.text
        time.sleep(1)


@pytest.mark.parametrize("phase", ["manifests", "blobs"])
def test_a_server_killed_mid_sweep_leaves_no_dangling_reference_and_the_next_run_finishes(
    start_registry: StartRegistry, tmp_path: Path, phase: str
) -> None:
    """``phase``: the kill comes once the sweep deletes junk manifests' revisions, or their blobs."""
    root = tmp_path / "root"
    registry = start_registry(workers=2, root=root)
    live: list[tuple[str, str]] = []
    with Served(registry.url) as served:
        for i in range(3):
            push(served, "live/app", f"v{i}", random_image(layers=2, layer_size=4096))
            live.append(("live/app", f"v{i}"))
        children = [random_image(layers=1, layer_size=4096, architecture=a) for a in ("amd64", "arm64")]
        push(served, "live/multi", "latest", image_index(children))
        live.append(("live/multi", "latest"))
    registry.stop()
    junk = _write_junk(root)

    _schedule(registry)
    # Blobs go last, in digest order: the run cannot end before the kill, however fast.
    registry.wrapper = held(root / blob_file(max(layer for _, _, layer in junk)))
    registry.start()
    if phase == "manifests":
        watched = [root / revision_file(r, m) for r, m, _ in junk]
    else:
        watched = [root / blob_file(layer) for _, _, layer in junk]
    deadline = time.monotonic() + WAIT
    while all(path.exists() for path in watched):  # until the sweep deletes those
        assert time.monotonic() < deadline, registry.log()[-4000:]
        time.sleep(0.005)
    registry.kill9()
    registry.wrapper = []

    # Mid-sweep: some of the garbage went, some is left.
    blobs_left = [layer for _, _, layer in junk if (root / blob_file(layer)).exists()]
    revisions_left = sum((root / revision_file(r, m)).exists() for r, m, _ in junk)
    assert blobs_left, "every junk blob went: nothing held the run"
    # Whatever the moment, references go before their targets.
    assert check_layout(root).problems == []
    dead = _state(root)
    assert dead["active"]  # the dead process still holds the lease, until it expires
    assert (root / GC / "runs" / dead["run"] / "decided").exists()

    reused = blobs_left[-1]
    repository = next(r for r, _, layer in junk if layer == reused)
    reused_data = (root / blob_file(reused)).read_bytes()
    registry.start()
    with Served(registry.url) as served:
        # A blob the dead run decided to delete and did not delete yet, in a new image: refused
        # while the dead run's lease lasts, acknowledged once it expired (its markers are void
        # then), and kept by the next run.
        refused = push_until_acknowledged(served, repository, reused_data)
        live.append((repository, "rescued"))
        for name, tag in live:
            served.verify_tree(name, tag)

        # The next run takes the lease over from the dead one and finishes its work.
        deadline = time.monotonic() + WAIT
        while any((root / blob_file(layer)).exists() for layer in blobs_left if layer != reused):
            assert time.monotonic() < deadline, registry.log()[-4000:]
            time.sleep(0.5)
        while (root / GC / "runs" / dead["run"]).exists():
            assert time.monotonic() < deadline, registry.log()[-4000:]
            time.sleep(0.5)
        assert _state(root)["run"] != dead["run"]
        for name, tag in live:
            served.verify_tree(name, tag)
        assert not any((root / revision_file(r, m)).exists() for r, m, _ in junk)
        assert check_layout(root).problems == []
        assert "scheduled garbage collection failed" not in registry.log()
    left = f"{revisions_left} of {len(junk)} junk revisions and {len(blobs_left)} junk layers left"
    print(f"killed with {left}; the push reusing one was refused {refused} times")
