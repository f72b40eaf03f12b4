"""The blob descriptor cache (``storage.cache.blobdescriptor: inmemory``) on S3, through the real
server: repeated HEADs of a blob and GETs of a manifest by digest stop reaching the bucket (counted
by the registry's own storage metrics); a delete through the registry is seen at once, one made
behind its back (as another replica would) once the expiry has passed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.observability.conftest import Samples, Scraper, debug_section, value
from tests.support.ceph import CephRGW
from tests.support.images import digest_of
from tests.support.processes import free_port
from tests.support.pushing import expect, push_blob, push_image
from tests.support.registry import RunningRegistry, StartRegistry, s3_storage

pytestmark = pytest.mark.s3

EXPIRY = 10.0
"""Long enough that the reads each test makes within it (a few dozen requests, one S3 call)
cannot outlast it on a loaded machine."""
READS = ("GetContent", "Stat")
"""The storage actions behind a HEAD of a blob (its link, its size) or a manifest's checks."""
ACTIONS = "registry_storage_action_seconds_count"


@pytest.fixture(scope="module")
def cached(start_registry: StartRegistry, ceph_rgw: CephRGW) -> Iterator[tuple[RunningRegistry, Scraper]]:
    """One worker (so one cache), its storage metrics on the debug listener."""
    port = free_port()
    storage = s3_storage(ceph_rgw, redirect=False)
    storage["cache"] = {"blobdescriptor": "inmemory", "blobdescriptorexpiry": f"{EXPIRY}s"}
    registry = start_registry({"storage": storage, "http": debug_section(port)}, workers=1)
    yield registry, Scraper(port)
    registry.stop()


@pytest.fixture
def http(cached: tuple[RunningRegistry, Scraper]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cached[0].url, timeout=60) as client:
        yield client


def storage_reads(samples: Samples) -> float:
    return sum(value(samples, ACTIONS, action=action, driver="s3") for action in READS)


def test_repeated_heads_of_a_blob_read_the_bucket_once(
    cached: tuple[RunningRegistry, Scraper], http: httpx.Client, new_repository: Callable[[], str]
) -> None:
    _, scraper = cached
    repo = new_repository()
    data = os.urandom(10_000)
    digest = push_blob(http, repo, data)
    before = storage_reads(scraper.settled(ACTIONS))
    for _ in range(20):
        head = expect(http.head(f"/v2/{repo}/blobs/{digest}"), 200)
        assert head.headers["Content-Length"] == str(len(data))
    assert expect(http.get(f"/v2/{repo}/blobs/{digest}"), 200).content == data
    reads = storage_reads(scraper.settled(ACTIONS)) - before
    assert 1 <= reads <= 2, reads  # the layer link and the blob's size, once (40 without the cache)


def test_a_get_of_a_blob_reads_its_link_and_its_content_at_once(
    cached: tuple[RunningRegistry, Scraper], http: httpx.Client, new_repository: Callable[[], str]
) -> None:
    """On a miss, the content's GET answers its size: no HEAD of it apart; then from the cache,
    the content alone."""
    _, scraper = cached
    repo = new_repository()
    data = os.urandom(10_000)
    digest = push_blob(http, repo, data)
    for links in (1, 0):
        before = scraper.samples()
        assert expect(http.get(f"/v2/{repo}/blobs/{digest}"), 200).content == data
        after = scraper.samples()
        counts = {
            action: value(after, "registry_storage_action_seconds_count", action=action, driver="s3")
            - value(before, "registry_storage_action_seconds_count", action=action, driver="s3")
            for action in ("GetContent", "Stat", "Reader")
        }
        assert counts == {"GetContent": links, "Stat": 0, "Reader": 1}, counts


def test_repeated_gets_of_a_manifest_by_digest_read_the_bucket_once(
    cached: tuple[RunningRegistry, Scraper], http: httpx.Client, new_repository: Callable[[], str]
) -> None:
    _, scraper = cached
    repo = new_repository()
    manifest = push_image(http, repo, "v1")
    digest = digest_of(manifest)
    before = storage_reads(scraper.settled(ACTIONS))
    for _ in range(10):
        assert expect(http.get(f"/v2/{repo}/manifests/{digest}"), 200).content == manifest
    reads = storage_reads(scraper.settled(ACTIONS)) - before
    assert 1 <= reads <= 2, reads  # the revision link, and the content once


def test_deletes_through_the_registry_are_seen_at_once(
    http: httpx.Client, new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    manifest = push_image(http, repo, "v1")
    digest = digest_of(manifest)
    blob = push_blob(http, repo, os.urandom(1000))
    expect(http.head(f"/v2/{repo}/blobs/{blob}"), 200)
    expect(http.get(f"/v2/{repo}/manifests/{digest}"), 200)
    expect(http.delete(f"/v2/{repo}/blobs/{blob}"), 202)
    expect(http.head(f"/v2/{repo}/blobs/{blob}"), 404)
    expect(http.delete(f"/v2/{repo}/manifests/{digest}"), 202)
    expect(http.get(f"/v2/{repo}/manifests/{digest}"), 404)


def test_a_delete_behind_the_registrys_back_is_seen_after_the_expiry(
    cached: tuple[RunningRegistry, Scraper],
    http: httpx.Client,
    ceph_rgw: CephRGW,
    new_repository: Callable[[], str],
) -> None:
    registry, _ = cached
    repo = new_repository()
    blob = push_blob(http, repo, os.urandom(1000))
    bucket, other_replica = registry.storage["s3"]["bucket"], ceph_rgw.client()
    link = f"docker/registry/v2/repositories/{repo}/_layers/sha256/{blob.removeprefix('sha256:')}/link"
    expect(http.head(f"/v2/{repo}/blobs/{blob}"), 200)
    other_replica.delete_object(Bucket=bucket, Key=link)
    # Within the expiry this worker still believes what it read ...
    assert http.head(f"/v2/{repo}/blobs/{blob}").status_code == 200
    # ... and no longer once it has passed.
    deadline = time.monotonic() + EXPIRY + 30
    while http.head(f"/v2/{repo}/blobs/{blob}").status_code != 404:
        assert time.monotonic() < deadline, "the registry still holds a deleted blob past the expiry"
        time.sleep(0.5)
