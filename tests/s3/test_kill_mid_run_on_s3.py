"""``kill -9`` of a server in the middle of its scheduled collection's sweep on S3 (Ceph RADOS
Gateway), as ``tests/lifecycle/test_kill_mid_run`` does on the filesystem: the kill comes once the
sweep's first ``DeleteObjects`` of junk revisions is done; then no tag points at a missing
revision and no remaining revision at a missing blob or layer link (checked on a listing of the
bucket), the dead run holds the lease until it expires, and the next run finishes the job.

The server reaches the gateway through a relay that holds the sweep's next delete request once
junk revisions are gone, so the kill lands there however fast the rest of the sweep would be
(watching the bucket and killing on sight lost to a sweep that was done by then)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.lifecycle.commands import blob_file, push, revision_file
from tests.lifecycle.test_kill_mid_run import SCHEDULE, junk_files, layer_link, push_until_acknowledged
from tests.s3.faults import deletes, gateway_address, through
from tests.support.ceph import CephRGW
from tests.support.images import random_image
from tests.support.registry import StartRegistry, s3_storage
from tests.support.served import Served
from tests.support.stall import StallingRelay

pytestmark = [pytest.mark.s3, pytest.mark.slow]

WAIT = 240.0
"""Bound on waiting for runs on a loaded machine (not a timing assertion)."""
STATE = "docker/registry/v2/_dockyard/gc/state"
TAG_LINK = "/_manifests/tags/"


def _keys(client: Any, bucket: str, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys |= {item["Key"] for item in page.get("Contents", [])}
    return keys


def _dangling(client: Any, bucket: str, junk: list[tuple[str, str, str]]) -> list[str]:
    """Tags whose revision is gone, and junk revisions whose blobs or layer links are gone."""
    keys = _keys(client, bucket)
    problems = []
    for key in keys:
        if TAG_LINK in key and key.endswith("/current/link"):
            repository = key.split("/repositories/", 1)[1].split("/_manifests/", 1)[0]
            digest = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            if revision_file(repository, digest) not in keys or blob_file(digest) not in keys:
                problems.append(f"tag {key} -> {digest}")
    for repository, manifest, layer in junk:
        if revision_file(repository, manifest) not in keys:
            continue
        needed = [blob_file(manifest), blob_file(layer), layer_link(repository, layer)]
        problems += [f"{repository}@{manifest} needs {k}" for k in needed if k not in keys]
    return problems


def test_a_server_killed_mid_sweep_on_s3_leaves_no_dangling_reference(
    start_registry: StartRegistry, ceph_rgw: CephRGW
) -> None:
    storage = s3_storage(ceph_rgw)
    bucket = storage["s3"]["bucket"]
    client = ceph_rgw.client()
    registry = start_registry({"storage": storage}, workers=2)
    live = []
    with Served(registry.url) as served:
        for i in range(2):
            push(served, "live/app", f"v{i}", random_image(layers=2, layer_size=4096))
            live.append(("live/app", f"v{i}"))
    registry.stop()
    files, junk = junk_files(repositories=4, per_repository=400)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), files.items())
        )

    prefix = "docker/registry/v2/repositories/junk/"

    def deletes_after_the_first_revisions(request_line: bytes) -> bool:
        """A delete request made once some junk revisions are gone (deletes go one batch at a
        time, so the batch before it is done)."""
        if not deletes(request_line):
            return False
        revisions = [k for k in _keys(ceph_rgw.client(), bucket, prefix) if "/_manifests/revisions/" in k]
        return len(revisions) < len(junk)

    with StallingRelay(gateway_address(ceph_rgw), deletes_after_the_first_revisions) as relay:
        registry.config["storage"]["s3"] = through(relay, storage)["s3"]
        registry.config["storage"]["maintenance"] = {"garbagecollect": SCHEDULE}
        registry.start()
        assert relay.stalled.wait(WAIT), registry.log()[-4000:]
        registry.kill9()
    # The relay dropped the held request with the connections: nothing more of the run lands.
    registry.config["storage"]["s3"] = storage["s3"]

    blobs = _keys(client, bucket, "docker/registry/v2/blobs/")
    blobs_left = [layer for _, _, layer in junk if blob_file(layer) in blobs]
    assert blobs_left, "junk blobs went before the revisions referring to them"
    assert _dangling(client, bucket, junk) == []
    dead = json.loads(client.get_object(Bucket=bucket, Key=STATE)["Body"].read())
    assert dead["active"]

    repository = next(r for r, _, layer in junk if layer == blobs_left[-1])
    reused = files[blob_file(blobs_left[-1])]
    registry.start()
    with Served(registry.url) as served:
        refused = push_until_acknowledged(served, repository, reused)
        live.append((repository, "rescued"))
        for name, tag in live:
            served.verify_tree(name, tag)
        # The next run takes the lease over and finishes the dead one's work.
        garbage = {blob_file(layer) for layer in blobs_left if layer != blobs_left[-1]}
        garbage |= {revision_file(r, m) for r, m, _ in junk}
        deadline = time.monotonic() + WAIT
        while (keys := _keys(client, bucket)) & garbage or any(f"/runs/{dead['run']}/" in k for k in keys):
            assert time.monotonic() < deadline, registry.log()[-4000:]
            time.sleep(1)
        for name, tag in live:
            served.verify_tree(name, tag)
        assert _dangling(client, bucket, junk) == []
        assert "scheduled garbage collection failed" not in registry.log()
    left = f"{len(blobs_left)} of {len(junk)} junk layers left"
    print(f"killed with {left}; the push reusing one was refused {refused} times")
