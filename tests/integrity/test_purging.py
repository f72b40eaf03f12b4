"""Abandoned uploads are purged as ``storage.maintenance.uploadpurging`` says, and only those."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from registry.storage import STAGED_WRITE_AGE
from tests.support.pushing import error_codes, expect, push_blob, push_blob_chunked, start_upload
from tests.support.registry import RunningRegistry, StartRegistry

AGE_SECONDS = 5
"""Far enough past a purge interval and a request or two that a young upload is still young when
it is looked at again on a loaded machine."""
INTERVAL_SECONDS = 1
PURGED_WITHIN = 60
"""Bound on a purge pass coming once uploads are old enough, on a loaded machine (not a measure)."""


def _purging(enabled: bool = True, dryrun: bool = False) -> dict[str, object]:
    policy = {
        "enabled": enabled,
        "age": f"{AGE_SECONDS}s",
        "interval": f"{INTERVAL_SECONDS}s",
        "dryrun": dryrun,
    }
    return {"storage": {"maintenance": {"uploadpurging": policy}}}


def _upload_dirs(registry: RunningRegistry, name: str) -> list[Path]:
    directory = registry.root / "docker/registry/v2/repositories" / name / "_uploads"
    return sorted(directory.iterdir()) if directory.exists() else []


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_abandoned_uploads_are_purged_and_young_ones_kept(start_registry: StartRegistry) -> None:
    registry = start_registry(_purging())
    name = "purge/abandoned"
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        empty = start_upload(client, name)
        with_data = start_upload(client, name)
        expect(client.patch(with_data, content=os.urandom(300_000)), 202)
        assert len(_upload_dirs(registry, name)) == 2
        purged = _wait_until(lambda: _upload_dirs(registry, name) == [], AGE_SECONDS + PURGED_WITHIN)
        assert purged, _upload_dirs(registry, name)
        for location in (empty, with_data):
            for method in ("GET", "PATCH", "PUT", "DELETE"):
                response = client.request(
                    method, location, params={"digest": "sha256:" + "0" * 64} if method == "PUT" else None
                )
                assert response.status_code == 404, (method, response.status_code)
                assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]
        young = start_upload(client, name)
        time.sleep(INTERVAL_SECONDS * 1.5)  # at least one more purge pass, well before the age limit
        assert expect(client.get(young), 204).headers["Range"] == "0-0"
        assert len(_upload_dirs(registry, name)) == 1
    assert "purged" in registry.log()


def test_dry_run_and_disabled_purging_keep_uploads(start_registry: StartRegistry) -> None:
    dry_run = start_registry(_purging(dryrun=True))
    disabled = start_registry(_purging(enabled=False))
    name = "uploads/kept"
    locations = {}
    for registry in (dry_run, disabled):
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            locations[registry.port] = start_upload(client, name)
            expect(client.patch(locations[registry.port], content=b"kept"), 202)
    noticed = _wait_until(lambda: "would purge" in dry_run.log(), AGE_SECONDS + PURGED_WITHIN)
    assert noticed, dry_run.log()[-2000:]
    for registry in (dry_run, disabled):
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            assert expect(client.get(locations[registry.port]), 204).headers["Range"] == "0-3"
        assert len(_upload_dirs(registry, name)) == 1
    assert "purge" not in disabled.log()


def _plant(path: Path, age: float, tree: bool = False) -> Path:
    """A staged write (a file, or a private tree) last written ``age`` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tree:
        (path / "sha256" / "ab").mkdir(parents=True)
        (path / "sha256" / "ab" / "link").write_bytes(b"sha256:" + b"0" * 64)
    else:
        path.write_bytes(os.urandom(100))
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@pytest.mark.parametrize("uploads_purged", [True, False], ids=["with-upload-purging", "without"])
def test_writes_a_kill_left_are_purged_and_live_ones_kept(
    start_registry: StartRegistry, uploads_purged: bool
) -> None:
    """Staged files beside the blobs and in the registry's own records, left by writers killed
    mid-write, go once older than STAGED_WRITE_AGE (however short the uploads' age), on upload
    purging's schedule whether upload purging is on or off; younger ones, a writer still writing
    and pushes under way are left alone."""
    registry = start_registry(_purging(enabled=uploads_purged))
    name = "purge/leftovers"
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        digest = push_blob(client, name, os.urandom(5000))
    v2 = registry.root / "docker/registry/v2"
    group = v2 / "blobs/sha256" / digest.removeprefix("sha256:")[:2]
    dead = STAGED_WRITE_AGE + 600
    leftovers = [
        _plant(group / ".dockyard-0123456789abcdef.tmp", dead),
        _plant(group / digest.removeprefix("sha256:") / ".dockyard-pending-data", dead),
        _plant(v2 / "_dockyard/gc/.dockyard-fedcba9876543210.tmp", dead, tree=True),
        _plant(v2 / "_dockyard/notifications/hook/.dockyard-1111111111111111.tmp", dead),
    ]
    kept = [
        _plant(group / ".dockyard-2222222222222222.tmp", STAGED_WRITE_AGE - 600),  # past the uploads' age
        _plant(v2 / "_dockyard/fetches/.dockyard-pending-data", 0),
    ]
    live = group / ".dockyard-3333333333333333.tmp"
    stop = threading.Event()

    def write_slowly() -> None:  # a writer still writing: its file is never old
        with live.open("wb") as file:
            while not stop.wait(0.2):
                file.write(os.urandom(1000))
                file.flush()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    pushed = []
    try:
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            deadline = time.monotonic() + PURGED_WITHIN
            while any(path.exists() for path in leftovers):
                assert time.monotonic() < deadline, [path for path in leftovers if path.exists()]
                content = os.urandom(200_000)
                pushed.append((push_blob_chunked(client, name, content, 64_000), content))
            for digest, content in pushed:  # every push during the purges is whole
                assert expect(client.get(f"/v2/{name}/blobs/{digest}"), 200).content == content
    finally:
        stop.set()
        writer.join()
    assert all(path.exists() for path in [*kept, live])
