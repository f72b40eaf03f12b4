"""Two pushes of the very same manifest straddling a collection's "condemned" marker, driven step
by step through the storage services and a real collection run on one root (each with a driver
of its own, as separate processes have): the push checked before the marker is acknowledged and
stays whole; the one checked after waits for the run's decision and is acknowledged too (its
content was spared), or refused when the run deletes the content, withdrawing only its own links.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.lifecycle.collect import Options, Report, garbage_collect
from registry.lifecycle.guard import PushGuard
from registry.lifecycle.usage import collect_and_record
from registry.references import Digest, RepositoryName, Tag
from registry.storage import Storage, paths
from registry.storage.manifest_format import Manifest
from storage_drivers import PathNotFound
from tests.lifecycle.gates import GatedDriver, first
from tests.storage.recording import manifests_of, put_image
from tests.support.images import Image, image_index, random_image

APP = RepositoryName.parse("race/app")
TAG = Tag.parse("v1")


def _storage(driver: GatedDriver) -> Storage:
    return Storage(driver, PushGuard(driver))


async def _unreferenced(root: Path) -> Image:
    """An image whose manifest was deleted: its blobs are stored, linked and referred to by nothing."""
    driver = GatedDriver(str(root))
    storage = _storage(driver)
    image = random_image(layers=2)
    digest = await put_image(storage, APP, image, tags=["old"])
    await storage.manifests.delete(APP, digest)
    return image


def _push(storage: Storage, image: Image) -> asyncio.Task[tuple[Digest, Manifest]]:
    put = storage.manifests.put(APP, TAG, image.manifest.data, image.manifest.media_type)
    return asyncio.create_task(put)


def _collect(driver: GatedDriver) -> asyncio.Task[Report]:
    return asyncio.create_task(garbage_collect(driver, Options(grace_period=0.0), lambda line: None))


async def _stored(root: Path, path: str) -> bool:
    try:
        await GatedDriver(str(root)).stat(path)
    except PathNotFound:
        return False
    return True


async def test_a_push_after_the_marker_cannot_undo_an_identical_acknowledged_push(tmp_path: Path) -> None:
    image = await _unreferenced(tmp_path)
    pusher_a, pusher_b, collector = (GatedDriver(str(tmp_path)) for _ in range(3))

    # B checks what it refers to before anything is linked again (so the revision is new to it),
    # then is held before writing its links.
    b_links = pusher_b.gate("put", lambda path: "/_manifests/revisions/" in path)
    b_checked = pusher_b.gate("get", lambda path: "/condemned/" in path, closed=False)
    push_b = _push(_storage(pusher_b), image)
    await b_links.reached.wait()

    # The run marks (nothing refers to the image) and is held before writing its markers.
    markers = collector.gate("put", lambda path: "/condemned/" in path)
    listing = collector.gate("walk", lambda path: path.endswith("/referenced"))
    run = _collect(collector)
    await first(markers.reached, run)
    assert not run.done(), run

    # A pushes the same manifest under the same tag: checked before the markers, acknowledged.
    digest, _ = await _storage(pusher_a).manifests.put(
        APP, TAG, image.manifest.data, image.manifest.media_type
    )

    # The markers are written; before the run lists what pushes referred to, B writes its links
    # and sees the markers.
    markers.open()
    await first(listing.reached, run)
    b_links.open()
    await first(b_checked.reached, push_b)
    listing.open()

    (outcome,) = await asyncio.gather(push_b, return_exceptions=True)
    await run

    # A's acknowledged push is whole: tag, revision, every blob.
    served = _storage(GatedDriver(str(tmp_path)))
    assert await manifests_of(served).resolve(APP, TAG) == digest
    assert await manifests_of(served).exists(APP, digest)
    for blob in image.blobs:
        assert await served.blobs.stat(APP, Digest.parse(blob.digest)) == len(blob.data)
    # The run spared what the pushes referred to, so B is acknowledged as well.
    assert not isinstance(outcome, BaseException), outcome
    assert outcome[0] == digest


async def test_a_push_after_the_decision_is_refused_and_withdraws_its_links(tmp_path: Path) -> None:
    image = await _unreferenced(tmp_path)
    pusher, collector = GatedDriver(str(tmp_path)), GatedDriver(str(tmp_path))

    # The run marks (nothing refers to the image) and is held before writing its markers.
    markers = collector.gate("put", lambda path: "/condemned/" in path)
    decided = collector.gate("put", lambda path: path.endswith("/decided"), closed=False)
    run = _collect(collector)
    await first(markers.reached, run)
    assert not run.done(), run

    # The push writes its links, then is held before recording what it refers to, until the run
    # has decided without its records.
    records = pusher.gate("put", lambda path: "/referenced/" in path)
    push = _push(_storage(pusher), image)
    await first(records.reached, push)
    markers.open()
    await first(decided.reached, run)
    records.open()

    with pytest.raises(RegistryError) as refused:
        await push
    assert refused.value.code is ErrorCode.MANIFEST_BLOB_UNKNOWN
    await run

    served = _storage(GatedDriver(str(tmp_path)))
    with pytest.raises(RegistryError):
        await manifests_of(served).resolve(APP, TAG)
    assert not await manifests_of(served).exists(APP, Digest.parse(image.digest))
    for blob in image.blobs:
        assert not await _stored(tmp_path, paths.blob_data(Digest.parse(blob.digest)))


async def test_a_push_during_a_run_keeps_what_the_children_of_its_index_refer_to(tmp_path: Path) -> None:
    """With --delete-untagged, an untagged index's children and their layers are condemned with
    it; tagging the index during the run keeps all of it, the children's layers included."""
    setup = _storage(GatedDriver(str(tmp_path)))
    index = image_index([random_image(layers=1, architecture=a) for a in ("amd64", "arm64")])
    for child in index.images:
        await put_image(setup, APP, child)
    await setup.manifests.put(APP, Digest.parse(index.digest), index.manifest.data, index.manifest.media_type)

    collector = GatedDriver(str(tmp_path))
    markers = collector.gate("put", lambda path: "/condemned/" in path)
    options = Options(grace_period=0.0, delete_untagged=True)
    run = asyncio.create_task(garbage_collect(collector, options, lambda line: None))
    await first(markers.reached, run)
    assert not run.done(), run

    pusher = GatedDriver(str(tmp_path))
    digest, _ = await _storage(pusher).manifests.put(APP, TAG, index.manifest.data, index.manifest.media_type)
    markers.open()
    await run

    served = _storage(GatedDriver(str(tmp_path)))
    assert await manifests_of(served).resolve(APP, TAG) == digest
    for child in index.images:
        assert await manifests_of(served).exists(APP, Digest.parse(child.digest))
        for blob in child.blobs:
            assert await served.blobs.stat(APP, Digest.parse(blob.digest)) == len(blob.data)


async def test_the_usage_record_counts_what_a_run_spared_for_a_push(tmp_path: Path) -> None:
    """The record counts the store as the run left it, not as its plan would have: a push made
    the run spare the plan's blobs, which are stored and counted."""
    image = await _unreferenced(tmp_path)
    collector = GatedDriver(str(tmp_path))
    markers = collector.gate("put", lambda path: "/condemned/" in path)
    options = Options(grace_period=0.0, workers=2)
    run = asyncio.create_task(collect_and_record(collector, options, lambda line: None))
    await first(markers.reached, run)
    assert not run.done(), run

    # Checked before the markers, acknowledged: the run spares every blob of the image.
    digest, _ = await _storage(GatedDriver(str(tmp_path))).manifests.put(
        APP, TAG, image.manifest.data, image.manifest.media_type
    )
    markers.open()
    report = await run
    assert len(report.removed.digests()) < len(report.planned.digests())

    stored = [p for p in (tmp_path / "docker/registry/v2/blobs").rglob("data")]
    assert sum(p.stat().st_size for p in stored) == sum(len(b.data) for b in [image.manifest, *image.blobs])
    record = json.loads(await GatedDriver(str(tmp_path)).get_content(paths.usage_record()))
    assert (record["blobs"], record["stored_bytes"]) == (len(stored), sum(p.stat().st_size for p in stored))
    assert await manifests_of(_storage(GatedDriver(str(tmp_path)))).resolve(APP, TAG) == digest
