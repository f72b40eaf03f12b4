"""``dockyard garbage-collect`` on a serving registry's filesystem root: what goes, what stays,
``--dry-run``, ``--delete-untagged`` (index children and referrers), the grace period, read-only
mode, two runs at once, and ``kill -9`` in the middle of a sweep."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.gc import build_store
from registry.lifecycle.cli import PRINT_BATCH
from registry.lifecycle.collect import Options
from registry.lifecycle.collect import garbage_collect as collect
from tests.integrity.layout import check_layout
from tests.lifecycle.commands import (
    blob_file,
    dockyard,
    garbage_collect,
    push,
    push_blob,
    revision_file,
    stored_files,
)
from tests.lifecycle.gates import GatedDriver, first
from tests.support.images import artifact, digest_of, image_index, random_image
from tests.support.registry import PROJECT, RunningRegistry, StartRegistry
from tests.support.served import Served
from tests.support.stall import held

GC_COMMAND = (sys.executable, "-m", "registry", "garbage-collect")


def _orphan(served: Served, repository: str, size: int = 2048) -> str:
    data = os.urandom(size)
    digest = digest_of(data)
    push_blob(served.http, repository, data, digest)
    return digest


def test_collects_unreferenced_blobs_and_dry_run_lists_exactly_them(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        kept = random_image(layers=2, layer_size=4096)
        replaced = random_image(layers=2, layer_size=4096)
        deleted = random_image(layers=2, layer_size=4096)
        shared = random_image(layers=1, layer_size=4096)
        push(served, "gc/app", "kept", kept)
        push(served, "gc/app", "moving", replaced)
        push(served, "gc/app", "moving", shared)  # `replaced` stays as an untagged revision
        push(served, "gc/other", "gone", deleted)
        assert served.status("DELETE", f"/v2/gc/other/manifests/{deleted.digest}") == 202
        orphan = _orphan(served, "gc/app")
        before = stored_files(registry.root)

        dry = garbage_collect(registry.config_path, "--dry-run", "--grace-period", "0s")
        assert stored_files(registry.root) == before
        real = garbage_collect(registry.config_path, "--grace-period", "0s")
        removed = before - stored_files(registry.root)

        expected_blobs = {blob.digest for blob in deleted.blobs} | {deleted.digest, orphan}
        assert {f for f in removed if "/blobs/" in f} == {blob_file(d) for d in expected_blobs}
        assert {f for f in removed if "/_layers/" in f} == {
            f"docker/registry/v2/repositories/{repo}/_layers/sha256/{d.split(':')[1]}/link"
            for repo, d in [("gc/app", orphan)] + [("gc/other", b.digest) for b in deleted.blobs]
        }
        assert all("/blobs/" in f or "/_layers/" in f for f in removed), removed
        dry_items = sorted(line.replace("eligible for deletion", "") for line in dry.stdout.splitlines())
        real_items = sorted(line.replace("deleted", "") for line in real.stdout.splitlines())
        assert dry_items == real_items
        assert len(real_items) == len(expected_blobs) + len(deleted.blobs) + 1
        summary = [line for line in real.stderr.splitlines() if "garbage collection:" in line]
        assert len(summary) == 1, real.stderr
        assert f"removed {len(expected_blobs)} blobs" in summary[0]
        assert "mark " in summary[0]
        assert "sweep " in summary[0]

        for reference in ("kept", "moving", replaced.digest):
            served.verify_tree("gc/app", reference)
        assert check_layout(registry.root).problems == []

        # --delete-untagged: the revision `moving` no longer names goes, with what only it used.
        before = stored_files(registry.root)
        garbage_collect(registry.config_path, "--delete-untagged", "--grace-period", "0s")
        removed = before - stored_files(registry.root)
        assert revision_file("gc/app", replaced.digest) in removed
        assert {blob_file(b.digest) for b in replaced.blobs} | {blob_file(replaced.digest)} <= removed
        assert served.status("GET", f"/v2/gc/app/manifests/{replaced.digest}") == 404
        served.verify_tree("gc/app", "kept")
        served.verify_tree("gc/app", "moving")
        assert check_layout(registry.root).problems == []


def test_delete_untagged_keeps_index_children_and_referrers_of_kept_manifests(
    start_registry: StartRegistry,
) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        index = image_index([random_image(layers=1, architecture=a) for a in ("amd64", "arm64")])
        push(served, "gc/multi", "v1", index)
        child = index.images[0]
        signature = artifact(child.manifest, "application/vnd.example.signature", {"kind": "sig"})
        push(served, "gc/multi", signature.digest, signature)  # untagged, its subject kept
        abandoned = random_image(layers=1)
        push(served, "gc/multi", abandoned.digest, abandoned)  # untagged, nothing keeps it
        sbom = artifact(abandoned.manifest, "application/vnd.example.sbom", {"kind": "sbom"})
        push(served, "gc/multi", sbom.digest, sbom)  # its subject goes, so it goes
        assert [d["digest"] for d in served.referrers("gc/multi", abandoned.digest)["manifests"]] == [
            sbom.digest
        ]

        garbage_collect(registry.config_path, "--delete-untagged", "--grace-period", "0s")

        served.verify_tree("gc/multi", "v1")
        served.verify_tree("gc/multi", signature.digest)
        listed = served.referrers("gc/multi", child.digest)["manifests"]
        assert [d["digest"] for d in listed] == [signature.digest]
        for gone in (abandoned, sbom):
            assert served.status("GET", f"/v2/gc/multi/manifests/{gone.digest}") == 404
            assert not (registry.root / blob_file(gone.layers[0].blob.digest)).exists()
        assert served.referrers("gc/multi", abandoned.digest)["manifests"] == []
        referrers_dir = registry.root / "docker/registry/v2/repositories/gc/multi/_dockyard/referrers"
        entries = (referrers_dir / "sha256" / abandoned.digest.split(":")[1]).rglob("*")
        assert not any(entry.is_file() for entry in entries)
        assert check_layout(registry.root).problems == []


def test_grace_period_keeps_young_content(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        orphan = _orphan(served, "gc/young")
        untagged = random_image(layers=1)
        push(served, "gc/young", untagged.digest, untagged)
        garbage_collect(registry.config_path, "--delete-untagged")  # the default grace: one hour
        assert (registry.root / blob_file(orphan)).exists()
        served.verify_tree("gc/young", untagged.digest)
        garbage_collect(registry.config_path, "--delete-untagged", "--grace-period", "0s")
        assert not (registry.root / blob_file(orphan)).exists()
        assert served.status("GET", f"/v2/gc/young/manifests/{untagged.digest}") == 404


def test_names_the_layout_does_not_write_are_skipped_and_left_in_place(start_registry: StartRegistry) -> None:
    """``lost+found`` (a name no storage path may hold) and stray files beside the blobs and
    repositories: the collection logs them once, leaves them, and collects as usual."""
    registry = start_registry()
    with Served(registry.url) as served:
        kept = random_image(layers=1)
        push(served, "gc/app", "kept", kept)
        orphan = _orphan(served, "gc/app")
        v2 = registry.root / "docker/registry/v2"
        blob_dir = (registry.root / blob_file(orphan)).parent
        foreign = [
            v2 / "blobs/lost+found/x",
            v2 / "blobs/sha256/lost+found/x",
            v2 / "blobs/sha256/stray.tmp",
            blob_dir.parent / "stray.tmp",
            blob_dir.parent / ("0" * 64) / "data",  # under a prefix it does not start with
            v2 / "repositories/lost+found/x",
            v2 / "repositories/gc/lost+found/_layers/x",
            v2 / "repositories/gc/app/_layers/sha256/stray.tmp",
            v2 / "repositories/gc/app/_manifests/tags/lost+found/current/link",
        ]
        for path in foreign:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(kept.digest)

        for flags in (("--dry-run",), ()):
            done = garbage_collect(registry.config_path, *flags, "--grace-period", "0s")
            assert f"blob {'eligible for deletion' if flags else 'deleted'}: {orphan}" in done.stdout
            skipped = [line for line in done.stderr.splitlines() if "does not write" in line]
            assert len(skipped) == 1, done.stderr
            assert "skipped 9 names" in skipped[0], skipped
        assert all(path.read_text() == kept.digest for path in foreign)
        assert not (registry.root / blob_file(orphan)).exists()
        served.verify_tree("gc/app", "kept")


def test_a_dry_run_prints_every_item_once_past_a_batch_of_lines(tmp_path: Path) -> None:
    """More lines than are written at once (``cli.PRINT_BATCH``): none lost or doubled at the
    batches' edges, whether Python's output is buffered or not."""
    root = tmp_path / "root"
    build_store(root, repositories=400)  # a deleted manifest's blob, an unused layer and its link each
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump({"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(root)}}})
    )
    assert PRINT_BATCH < 3 * 400
    for unbuffered in ("1", ""):
        done = subprocess.run(
            [*GC_COMMAND, str(config), "--dry-run", "--grace-period", "0s"],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
            check=True,
        )
        lines = done.stdout.splitlines()
        assert len(lines) == len(set(lines)) == 3 * 400
        assert sum(line.startswith("blob eligible for deletion: ") for line in lines) == 2 * 400
        assert "would remove 800 blobs" in done.stderr


def test_read_only_mode_refuses_garbage_collection(start_registry: StartRegistry, tmp_path: Path) -> None:
    registry = start_registry()
    config = yaml.safe_load(registry.config_path.read_text())
    config["storage"]["maintenance"] = {"readonly": {"enabled": True}}
    read_only = tmp_path / "read-only.yml"
    read_only.write_text(yaml.safe_dump(config))
    for command, args in (("garbage-collect", ()), ("delete-repository", ("some/name",))):
        done = dockyard(read_only, command, *args)
        assert done.returncode != 0
        assert "read-only mode" in done.stderr, done.stderr


async def test_two_runs_at_once_one_sweeps(start_registry: StartRegistry) -> None:
    """A run that holds the lease (held at its markers, in this process) and the command run
    meanwhile: the command is refused, the holder sweeps."""
    registry = start_registry()
    with Served(registry.url) as served:
        image = random_image(layers=2)
        push(served, "gc/twice", "v1", image)
        orphans = [_orphan(served, "gc/twice") for _ in range(20)]
        holding = GatedDriver(str(registry.root))
        marking = holding.gate("put", lambda path: "/condemned/" in path)
        run = asyncio.create_task(collect(holding, Options(grace_period=0.0), lambda line: None))
        await first(marking.reached, run)
        assert not run.done(), run
        refused = await asyncio.to_thread(
            dockyard, registry.config_path, "garbage-collect", "--grace-period", "0s"
        )
        assert refused.returncode == 1, refused
        assert "another maintenance run holds the lease" in refused.stderr
        assert all((registry.root / blob_file(d)).exists() for d in orphans)
        marking.open()
        await run
        assert not any((registry.root / blob_file(d)).exists() for d in orphans)
        served.verify_tree("gc/twice", "v1")
        assert check_layout(registry.root).problems == []


def test_kill9_during_sweep_leaves_nothing_dangling_and_the_next_run_finishes(
    start_registry: StartRegistry,
) -> None:
    registry = start_registry()
    interrupted = 0
    with Served(registry.url) as served:
        keep = random_image(layers=2)
        push(served, "gc/crash", "keep", keep)
        for round_ in range(2):
            garbage = _make_garbage(served, registry, 150)
            # Blobs go last, in digest order: the run cannot end before the kill.
            last = max(f for f in garbage if "/blobs/" in f)
            process = subprocess.Popen(
                [
                    *held(registry.root / last),
                    *GC_COMMAND,
                    str(registry.config_path),
                    "--delete-untagged",
                    "--grace-period",
                    "0s",
                    "--quiet",
                ],
                cwd=PROJECT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _kill_once_sweeping(process, registry.root, garbage)
            left = sum((registry.root / f).exists() for f in garbage)
            interrupted += 0 < left < len(garbage)
            assert check_layout(registry.root).problems == [], round_
            served.verify_tree("gc/crash", "keep")
            # The dead run's lease must expire before the next run may sweep.
            _wait_for_lease_expiry(registry)
            garbage_collect(registry.config_path, "--delete-untagged", "--grace-period", "0s")
            assert not any((registry.root / f).exists() for f in garbage), round_
            served.verify_tree("gc/crash", "keep")
            assert check_layout(registry.root).problems == []
    assert interrupted == 2, "a kill came before the sweep or after it"


def _kill_once_sweeping(process: subprocess.Popen[bytes], root: Path, garbage: list[str]) -> None:
    """SIGKILL the run as soon as the first of ``garbage`` is gone: in the middle of its sweep."""
    deadline = time.monotonic() + 180  # a bound for a loaded machine, not a measure
    while all((root / f).exists() for f in garbage) and process.poll() is None:
        assert time.monotonic() < deadline, "the run never started sweeping"
        time.sleep(0.002)
    assert process.poll() is None, "the run ended before the kill"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _make_garbage(served: Served, registry: RunningRegistry, images: int) -> list[str]:
    """Untagged images and indexes; the files a full run removes."""
    files = []
    for i in range(images):
        image = random_image(layers=1, layer_size=512)
        push(served, "gc/crash", image.digest, image)
        files += [blob_file(image.digest), blob_file(image.layers[0].blob.digest)]
        files.append(revision_file("gc/crash", image.digest))
        if i % 10 == 0:
            index = image_index([image])
            push(served, "gc/crash", index.digest, index)
            files += [blob_file(index.digest), revision_file("gc/crash", index.digest)]
    assert all((registry.root / f).exists() for f in files)
    return files


def _wait_for_lease_expiry(registry: RunningRegistry, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = dockyard(registry.config_path, "garbage-collect", "--grace-period", "0s", "--quiet")
        if done.returncode == 0:
            return
        assert "another maintenance run holds the lease" in done.stderr, done.stderr
        time.sleep(5)
    pytest.fail("the dead run's lease never expired")
