"""Abandoned uploads are purged as ``storage.maintenance.uploadpurging`` says, and only those."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.pushing import error_codes, expect, start_upload
from tests.support.registry import RunningRegistry, StartRegistry

AGE_SECONDS = 3
INTERVAL_SECONDS = 1


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
        purged = _wait_until(
            lambda: _upload_dirs(registry, name) == [], AGE_SECONDS + 4 * INTERVAL_SECONDS + 5
        )
        assert purged, _upload_dirs(registry, name)
        young = start_upload(client, name)
        for location in (empty, with_data):
            for method in ("GET", "PATCH", "PUT", "DELETE"):
                response = client.request(
                    method, location, params={"digest": "sha256:" + "0" * 64} if method == "PUT" else None
                )
                assert response.status_code == 404, (method, response.status_code)
                assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]
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
    noticed = _wait_until(lambda: "would purge" in dry_run.log(), AGE_SECONDS + 4 * INTERVAL_SECONDS + 5)
    assert noticed, dry_run.log()[-2000:]
    for registry in (dry_run, disabled):
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            assert expect(client.get(locations[registry.port]), 204).headers["Range"] == "0-3"
        assert len(_upload_dirs(registry, name)) == 1
    assert "purge" not in disabled.log()
