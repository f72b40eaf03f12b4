"""A client's DELETE of a manifest racing a collection that deletes untagged manifests, driven step
by step through the storage services and a real collection run on one root (each with a driver
of its own, as separate processes have). The DELETE removes the tags first, then the revision: a
run that reads the tags in between finds the revision untagged and may delete it first. What the
client asked for is done either way, and the DELETE says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from registry.errors import RegistryError
from registry.lifecycle.collect import Options, garbage_collect
from registry.lifecycle.guard import PushGuard
from registry.references import RepositoryName, Tag
from registry.storage import Storage
from tests.lifecycle.gates import GatedDriver, first, held
from tests.storage.recording import manifests_of, put_image
from tests.support.images import random_image

APP = RepositoryName.parse("race/delete")


def _storage(driver: GatedDriver) -> Storage:
    return Storage(driver, PushGuard(driver))


async def test_a_delete_whose_revision_a_collection_took_first_is_done(tmp_path: Path) -> None:
    digest = await put_image(_storage(GatedDriver(str(tmp_path))), APP, random_image(layers=1), tags=["v1"])

    # The DELETE has removed the tag and is held before it removes the revision.
    client = GatedDriver(str(tmp_path))
    revision = held(client, "delete", lambda path: "/_manifests/revisions/" in path)
    deleting = asyncio.create_task(_storage(client).manifests.delete(APP, digest))
    await first(revision.reached, deleting)
    assert not deleting.done(), deleting

    # A run that deletes untagged manifests finds the revision untagged and deletes it.
    options = Options(grace_period=0.0, delete_untagged=True)
    report = await garbage_collect(GatedDriver(str(tmp_path)), options, lambda line: None)
    assert (APP, digest) in report.removed.all_revisions()

    revision.open()
    await deleting  # done, not MANIFEST_UNKNOWN: the manifest it found is deleted

    served = _storage(GatedDriver(str(tmp_path)))
    assert not await manifests_of(served).exists(APP, digest)
    with pytest.raises(RegistryError):
        await manifests_of(served).resolve(APP, Tag.parse("v1"))
