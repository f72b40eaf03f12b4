"""A real run's revision links, with the walk in one process or split among several: a revision
directory left without its link, as Distribution deletes a manifest, is no revision, so its
content goes and the usage figures do not count it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.lifecycle.collect import Options
from registry.lifecycle.guard import PushGuard
from registry.lifecycle.usage import collect_and_record
from registry.references import Digest, RepositoryName
from registry.storage import Storage, paths
from storage_drivers.filesystem import FilesystemDriver
from tests.storage.recording import put_image
from tests.support.images import random_image

APP = RepositoryName.parse("links/app")


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_revision_directory_without_its_link_keeps_nothing(tmp_path: Path, workers: int) -> None:
    driver = FilesystemDriver(str(tmp_path))
    storage = Storage(driver, PushGuard(driver))
    kept, deleted = random_image(layers=1), random_image(layers=1)
    await put_image(storage, APP, kept, tags=["v1"])
    await put_image(storage, APP, deleted)
    link = tmp_path / paths.manifest_revision_link(APP, Digest.parse(deleted.digest)).lstrip("/")
    link.unlink()
    assert link.parent.is_dir()

    report = await collect_and_record(driver, Options(grace_period=0.0, workers=workers), lambda line: None)

    assert set(report.removed.blobs) == {Digest.parse(b.digest) for b in [deleted.manifest, *deleted.blobs]}
    assert all((tmp_path / paths.blob_data(Digest.parse(b.digest)).lstrip("/")).is_file() for b in kept.blobs)
    record = json.loads(await driver.get_content(paths.usage_record()))
    (repository,) = record["repositories"]
    assert (repository["name"], repository["manifests"], record["unreferenced_bytes"]) == ("links/app", 1, 0)
    assert repository["referenced_bytes"] == sum(len(b.data) for b in [kept.manifest, *kept.blobs])
