"""Usage figures and scheduled collection on S3 (Ceph RADOS Gateway): ``dockyard usage`` against
the sizes of the blob objects in the bucket, then a server with the schedule on collecting an
orphan and recording figures that match the bucket again."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from tests.lifecycle.commands import dockyard, push, push_blob
from tests.support.ceph import CephRGW
from tests.support.images import Image, digest_of, random_image
from tests.support.registry import RunningRegistry, StartRegistry, s3_storage
from tests.support.served import Served

pytestmark = [pytest.mark.s3, pytest.mark.slow]

WAIT = 180.0
"""Bound on waiting for a scheduled run on a loaded machine (not a timing assertion)."""


def _blob_sizes(rgw: CephRGW, registry: RunningRegistry) -> dict[str, int]:
    """Digest -> size of every blob's data object in the registry's bucket."""
    sizes = {}
    paginator = rgw.client().get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=registry.storage["s3"]["bucket"], Prefix="docker/registry/v2/blobs/"
    ):
        for item in page.get("Contents", []):
            parts = item["Key"].split("/")
            if parts[-1] == "data":
                sizes[f"{parts[-4]}:{parts[-2]}"] = item["Size"]
    return sizes


def _digests(image: Image) -> set[str]:
    return {image.digest, *(blob.digest for blob in image.blobs)}


def _check(document: dict[str, Any], sizes: dict[str, int], repositories: dict[str, set[str]]) -> None:
    assert document["stored_bytes"] == sum(sizes.values())
    assert document["blobs"] == len(sizes)
    figures = {entry["name"]: entry for entry in document["repositories"]}
    assert set(figures) == set(repositories)
    for name, mine in repositories.items():
        theirs = set().union(*(d for other, d in repositories.items() if other != name))
        assert figures[name]["referenced_bytes"] == sum(sizes[d] for d in mine)
        assert figures[name]["unique_bytes"] == sum(sizes[d] for d in mine - theirs)


def test_usage_and_scheduled_collection_on_s3(start_registry: StartRegistry, ceph_rgw: CephRGW) -> None:
    storage = s3_storage(ceph_rgw)
    registry = start_registry({"storage": storage})
    app, api = random_image(layers=2), random_image(layers=1)
    shared = Image(api.manifest, api.config, api.layers)  # api's blobs, pushed to both
    with Served(registry.url) as served:
        push(served, "s3usage/app", "v1", app)
        push(served, "s3usage/api", "v1", api)
        push(served, "s3usage/app", "api", shared)
        orphan = os.urandom(5000)
        push_blob(served.http, "s3usage/api", orphan, digest_of(orphan))
    repositories = {"s3usage/app": _digests(app) | _digests(api), "s3usage/api": _digests(api)}

    done = dockyard(registry.config_path, "usage", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    _check(document, _blob_sizes(ceph_rgw, registry), repositories)
    assert document["unreferenced_bytes"] == len(orphan)

    schedule = {"enabled": True, "interval": "2s", "graceperiod": "0s"}
    collecting = start_registry({"storage": {**storage, "maintenance": {"garbagecollect": schedule}}})
    with Served(collecting.url) as served:
        deadline = time.monotonic() + WAIT
        while True:
            record = served.http.get("/v2/_dockyard/usage").json()
            if record["unreferenced_bytes"] == 0:
                break
            assert time.monotonic() < deadline, collecting.log()[-3000:]
            time.sleep(0.5)
        assert served.status("HEAD", f"/v2/s3usage/api/blobs/{digest_of(orphan)}") == 404
        served.verify_tree("s3usage/app", "v1")
    _check(record, _blob_sizes(ceph_rgw, registry), repositories)
