"""Garbage collection and repository deletion on S3 (Ceph RADOS Gateway): what goes and what stays,
``--dry-run`` against a real run, the stress load of ``tests/lifecycle/stress`` with the collector
in another process, repository deletion as skopeo and the catalog see it, and a gateway that
hangs during a run: the run stops with a clear error and breaks nothing."""

from __future__ import annotations

import asyncio
import copy
import os
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import yaml

from registry.lifecycle.lease import try_take
from registry.references import Digest
from registry.storage import paths
from storage_drivers import create_driver
from storage_drivers.s3.clients import BULK
from tests.lifecycle import lease_cases
from tests.lifecycle.commands import blob_file, dockyard, garbage_collect, push, push_blob
from tests.lifecycle.stress import Collections, Ledger, run_load, verify_live
from tests.s3.faults import deletes, gateway_address
from tests.support.ceph import CephRGW
from tests.support.containers import ContainerTools
from tests.support.images import digest_of, random_image
from tests.support.registry import PROJECT, RunningRegistry, StartRegistry, s3_storage
from tests.support.served import Served
from tests.support.stall import StallingRelay

pytestmark = [pytest.mark.s3, pytest.mark.slow]

HUNG_RUN_BOUND = BULK.deadline + 120
"""How long a run whose storage hangs may last: a deletion call gives up by its budget's
deadline (a single key's sooner), with ample time around it for the run's start and end on a
loaded machine; well short of botocore's own 60 s read timeout times five attempts."""


@pytest.fixture
def registry(start_registry: StartRegistry, ceph_rgw: CephRGW) -> Iterator[RunningRegistry]:
    """A registry of its own on a fresh bucket (collections see a whole bucket)."""
    started = start_registry({"storage": s3_storage(ceph_rgw)})
    yield started
    started.stop()


def _keys(rgw: CephRGW, registry: RunningRegistry) -> set[str]:
    client = rgw.client()
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=registry.storage["s3"]["bucket"]):
        keys |= {item["Key"] for item in page.get("Contents", []) if "/_dockyard/gc/" not in item["Key"]}
    return keys


def test_collects_on_s3_and_dry_run_lists_what_a_run_removes(
    registry: RunningRegistry, ceph_rgw: CephRGW
) -> None:
    with Served(registry.url) as served:
        kept, deleted = random_image(layers=2), random_image(layers=2)
        push(served, "s3gc/app", "kept", kept)
        push(served, "s3gc/app", "gone", deleted)
        assert served.status("DELETE", f"/v2/s3gc/app/manifests/{deleted.digest}") == 202
        orphan = os.urandom(3000)
        push_blob(served.http, "s3gc/app", orphan, digest_of(orphan))
        before = _keys(ceph_rgw, registry)

        dry = garbage_collect(registry.config_path, "--dry-run", "--grace-period", "0s")
        assert _keys(ceph_rgw, registry) == before
        real = garbage_collect(registry.config_path, "--grace-period", "0s")
        removed = before - _keys(ceph_rgw, registry)

        gone = {blob.digest for blob in deleted.blobs} | {deleted.digest, digest_of(orphan)}
        assert {k for k in removed if "/blobs/" in k} == {blob_file(d) for d in gone}
        assert all("/blobs/" in k or "/_layers/" in k for k in removed), removed
        dry_items = sorted(line.replace("eligible for deletion", "") for line in dry.stdout.splitlines())
        assert dry_items == sorted(line.replace("deleted", "") for line in real.stdout.splitlines())
        served.verify_tree("s3gc/app", "kept")
        assert served.status("HEAD", f"/v2/s3gc/app/blobs/{digest_of(orphan)}") == 404


def _stress_shortfall(ledger: Ledger, collections: Collections) -> list[str]:
    """What the load on S3 has yet to prove: runs that deleted while pushes reused what they
    deleted."""
    wanted = {
        "runs": (collections.runs, 3),
        "blobs removed": (collections.blobs_removed, 10),
        "unreferenced blobs reused": (ledger.counts["unreferenced blobs reused"], 20),
        "live images": (len(ledger.live), 10),
    }
    return [f"{name}: {have} < {least}" for name, (have, least) in wanted.items() if have < least]


def test_collection_racing_pushes_on_s3_never_breaks_an_acknowledged_image(registry: RunningRegistry) -> None:
    seed = random.randrange(1 << 32)
    repositories = ["s3stress/a", "s3stress/b", "s3stress/c"]
    # 45 s of load, and on (up to 300 s in all, not a timing assertion) until it proved enough.
    ledger, collections = run_load(
        registry.url, registry.config_path, repositories, 45, seed, _stress_shortfall, 300
    )
    assert ledger.failures == [], (seed, ledger.failures[:5])
    assert collections.errors == [], (seed, collections.errors[:2])
    garbage_collect(registry.config_path, "--grace-period", "0s")
    assert verify_live(registry.url, ledger) == [], seed
    print(f"seed {seed}: {dict(ledger.counts)}; {collections}")
    assert _stress_shortfall(ledger, collections) == [], (seed, ledger.counts, collections)


def test_repository_deletion_on_s3(registry: RunningRegistry, tmp_path: Path) -> None:
    tools = ContainerTools(tmp_path / "containers")
    try:
        with Served(registry.url) as served:
            push(served, "s3del/app", "v1", random_image(layers=1))
            push(served, "s3del/keep", "v1", random_image(layers=1))
            reference = f"docker://{registry.host}/s3del/app:v1"
            tools.skopeo("inspect", reference)
            assert served.status("DELETE", "/v2/s3del/app/_dockyard/repository") == 202
            assert served.catalog() == ["s3del/keep"]
            assert served.status("GET", "/v2/s3del/app/tags/list") == 404
            assert tools.skopeo("inspect", reference, check=False).returncode != 0
            done = dockyard(registry.config_path, "delete-repository", "s3del/keep")
            assert done.returncode == 0, done.stderr
            assert served.catalog() == []
    finally:
        tools.release_storage()


def test_a_hung_gateway_stops_the_run_with_a_clear_error(
    registry: RunningRegistry, ceph_rgw: CephRGW
) -> None:
    """The gateway hangs at the run's first deletion, while the run holds the lease: a relay
    stops passing requests on there (a run of this size is over in a fraction of a second, too
    soon to freeze the gateway's process on cue)."""
    with Served(registry.url) as served:
        kept = random_image(layers=1)
        push(served, "s3hang/app", "kept", kept)
        orphans = [os.urandom(1000) for _ in range(30)]
        for orphan in orphans:
            push_blob(served.http, "s3hang/app", orphan, digest_of(orphan))
        with StallingRelay(gateway_address(ceph_rgw), deletes) as relay:
            config = copy.deepcopy(registry.config)
            config["storage"]["s3"]["regionendpoint"] = relay.endpoint
            config_path = registry.workdir / "through-relay.yml"
            config_path.write_text(yaml.safe_dump(config))
            run = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "registry",
                    "garbage-collect",
                    str(config_path),
                    "--grace-period",
                    "0s",
                ],
                cwd=PROJECT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # The gateway stays hung until the run has ended: let through late, the held delete
            # could land and the run go on, and which of the two came first would be luck.
            try:
                _, stderr = run.communicate(timeout=HUNG_RUN_BOUND)
            except subprocess.TimeoutExpired:
                run.kill()
                _, stderr = run.communicate()
                raise AssertionError(f"the run outlived its storage budget: {stderr[-3000:]}") from None
            assert relay.stalled.is_set(), stderr
            assert run.returncode != 0, stderr
        # Whichever notices first: a storage call past its budget, or the lease it cannot renew.
        stopped = ("the storage failed; nothing more was changed", "stopped before deleting anything more")
        assert any(message in stderr for message in stopped), stderr[-3000:]
        served.verify_tree("s3hang/app", "kept")


async def test_two_runs_at_once_on_s3_one_sweeps(registry: RunningRegistry, ceph_rgw: CephRGW) -> None:
    """While one run holds the lease (taken in this process) the command is refused; once it is
    released the command sweeps."""
    with Served(registry.url) as served:
        push(served, "s3twice/app", "v1", random_image(layers=1))
        orphans = [os.urandom(700) for _ in range(10)]
        for orphan in orphans:
            push_blob(served.http, "s3twice/app", orphan, digest_of(orphan))
        driver = create_driver("s3", registry.storage["s3"])
        try:
            holder = await try_take(driver, "garbage-collect")
            refused = await asyncio.to_thread(
                dockyard, registry.config_path, "garbage-collect", "--grace-period", "0s"
            )
            assert refused.returncode == 1, refused
            assert "another maintenance run holds the lease" in refused.stderr
            assert {blob_file(digest_of(o)) for o in orphans} <= _keys(ceph_rgw, registry)
            await holder.release()
        finally:
            await driver.close()
        garbage_collect(registry.config_path, "--grace-period", "0s")
        assert not {blob_file(digest_of(o)) for o in orphans} & _keys(ceph_rgw, registry)
        served.verify_tree("s3twice/app", "v1")


async def test_of_many_takers_on_s3_exactly_one_takes_the_lease(ceph_rgw: CephRGW) -> None:
    parameters = ceph_rgw.driver_parameters(ceph_rgw.create_bucket())
    drivers = [create_driver("s3", parameters) for _ in range(6)]
    try:
        await lease_cases.exactly_one_of_many_takers_wins(drivers)
    finally:
        for driver in drivers:
            await driver.close()


async def test_a_dead_holders_lease_on_s3_is_taken_over_once_it_expired(
    ceph_rgw: CephRGW, monkeypatch: pytest.MonkeyPatch
) -> None:
    parameters = ceph_rgw.driver_parameters(ceph_rgw.create_bucket())
    dead, taker = create_driver("s3", parameters), create_driver("s3", parameters)
    try:
        await lease_cases.a_dead_holders_lease_is_taken_over_once_it_expired(dead, taker, monkeypatch)
        monkeypatch.undo()
        await lease_cases.a_claim_its_holder_never_recorded_is_taken_over_once_it_expired(taker, monkeypatch)
    finally:
        await dead.close()
        await taker.close()


HELD_UP_CASES = [
    lease_cases.a_renewal_held_up_past_a_takeover_leaves_the_new_holders_record,
    lease_cases.a_release_held_up_past_a_takeover_leaves_the_new_holders_record,
    lease_cases.a_holder_paused_between_reading_and_writing_its_record_writes_nothing,
    lease_cases.a_claim_held_up_past_a_takeover_leaves_the_new_holders_record,
]


@pytest.mark.parametrize("case", HELD_UP_CASES, ids=lambda case: case.__name__)
async def test_a_holder_held_up_on_s3_never_leaves_its_record_over_a_newer_holders(
    ceph_rgw: CephRGW, monkeypatch: pytest.MonkeyPatch, case: Callable[..., Awaitable[None]]
) -> None:
    parameters = ceph_rgw.driver_parameters(ceph_rgw.create_bucket())
    holder, taker = create_driver("s3", parameters), create_driver("s3", parameters)
    try:
        await case(holder, taker, monkeypatch)
    finally:
        await holder.close()
        await taker.close()


async def test_a_renewal_on_s3_that_lands_after_the_expiry_stops_the_holder(
    ceph_rgw: CephRGW, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = create_driver("s3", ceph_rgw.driver_parameters(ceph_rgw.create_bucket()))
    try:
        await lease_cases.a_renewal_that_lands_after_the_expiry_stops_the_holder(driver, monkeypatch)
    finally:
        await driver.close()


async def test_a_run_starts_at_the_time_s3_listings_give(ceph_rgw: CephRGW) -> None:
    """Content written just before a run takes its lease is older than the run's start, to the
    millisecond S3 listings carry (a stat's whole second would make it look younger than the run,
    and spare it until the next one)."""
    driver = create_driver("s3", ceph_rgw.driver_parameters(ceph_rgw.create_bucket()))
    try:
        for _ in range(3):
            written = paths.blob_data(Digest.of(os.urandom(16)))
            await driver.put_content(written, b"orphan")
            lease = await try_take(driver, "garbage-collect")
            await lease.release()
            (listed,) = [info async for info in driver.walk(paths.BLOBS) if info.path == written]
            assert listed.modified <= lease.started
    finally:
        await driver.close()
