"""Cached content unused for ``ttl`` leaves the cache; content in use stays; expired content is
fetched again on the next pull."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from tests.support.distribution import DistributionRegistry
from tests.support.images import Image, random_image
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.waiting import eventually, until

from .conftest import V2, Stored, Upstream, mirror_of

pytestmark = pytest.mark.interop

TTL = 4.0


def pull(client: httpx.Client, repo: str, image: Image) -> None:
    manifest = client.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": image.manifest.media_type})
    assert manifest.status_code == 200, manifest.text
    for blob in image.blobs:
        assert client.get(f"/v2/{repo}/blobs/{blob.digest}").content == blob.data


def cached(mirror: RunningRegistry, repo: str, image: Image) -> dict[str, bool]:
    repository = f"{V2}/repositories/{repo}"
    hexes = {"manifest": image.digest, **{f"blob{i}": b.digest for i, b in enumerate(image.blobs)}}
    paths = [
        f"{repository}/{'_manifests/revisions' if what == 'manifest' else '_layers'}/sha256/{digest[7:]}"
        for what, digest in hexes.items()
    ]
    return dict(zip(hexes, Stored(mirror).each_exists(paths), strict=True))


def test_unused_content_expires_and_content_in_use_stays(
    start_registry: StartRegistry, upstream: Upstream, distribution_upstream: DistributionRegistry
) -> None:
    mirror = start_registry(config=mirror_of(distribution_upstream.url, ttl=f"{TTL}s"), workers=2)
    used, unused = random_image(layers=1), random_image(layers=1)
    upstream.push("team/used", "1.0", used)
    upstream.push("team/unused", "1.0", unused)
    with httpx.Client(base_url=mirror.url, timeout=30, follow_redirects=True) as client:
        pull(client, "hub/team/used", used)
        pull(client, "hub/team/unused", unused)
        # A blob is linked once the download that served it is verified: just after its last byte.
        until(
            lambda: all(cached(mirror, "hub/team/unused", unused).values()), what="for the blobs to be linked"
        )
        deadline = time.monotonic() + 3 * TTL
        while time.monotonic() < deadline:  # one image keeps being pulled, the other not
            pull(client, "hub/team/used", used)
            time.sleep(0.3)
        assert all(cached(mirror, "hub/team/used", used).values())
        # An expiry round takes its time on S3 (it lists and reads every record): let it end.
        until(lambda: not any(cached(mirror, "hub/team/unused", unused).values()), what="for the expiry")
        assert not Stored(mirror).exists(f"{V2}/repositories/hub/team/unused/_manifests/tags/1.0")
        pull(client, "hub/team/unused", unused)  # from the upstream again
        until(
            lambda: all(cached(mirror, "hub/team/unused", unused).values()), what="for the blobs to be linked"
        )
    assert "expired" in mirror.log()


def test_downloads_a_stopped_registry_abandoned_are_removed(
    start_registry: StartRegistry, distribution_upstream: DistributionRegistry
) -> None:
    # What a registry killed while downloading leaves: claims whose heartbeat stopped long ago
    # (or none at all), the bytes so far, and the record of the claim that led.
    mirror = start_registry(config=mirror_of(distribution_upstream.url, ttl="0"), workers=1)
    storage = Stored(mirror)
    fetches = f"{V2}/_dockyard/fetches/sha256/{os.urandom(32).hex()}"
    long_ago = 1_600_000_000.0
    abandoned = f"{int(long_ago * 1e9):020d}-0badc0de"
    without_claim = f"{int(long_ago * 1e9) + 1:020d}-0badc0df"
    alive = f"{time.time_ns():020d}-600df00d"
    storage.write(f"{fetches}/{abandoned}/claim", claim(long_ago))
    storage.write(f"{fetches}/{abandoned}/data", b"the first bytes")
    storage.write(f"{fetches}/{without_claim}/data", b"the first bytes")
    storage.write(f"{fetches}/leader", abandoned.encode())
    storage.write(f"{fetches}/{alive}/claim", claim(time.time()))
    mirror.restart()  # a registry starting removes them, whatever its ttl

    left = [f"{fetches}/{alive}/claim"]

    def only_the_live_claim_left_and_said() -> None:
        assert storage.files(fetches) == left
        assert "removed 2 abandoned downloads" in mirror.log()  # written once the last is gone

    eventually(only_the_live_claim_left_and_said)


def claim(heartbeat: float) -> bytes:
    return json.dumps({"heartbeat": heartbeat, "source": "upstream/team/app", "size": 1 << 20}).encode()
