"""The same requests to the registry and to CNCF Distribution 3.1, both scraped: every HTTP
series Distribution has for them, the registry has too, with the same name, type, labels and
buckets, so a Distribution dashboard shows the registry's numbers."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.processes import free_port
from tests.support.pushing import expect, image_manifest
from tests.support.registry import StartRegistry
from tests.support.waiting import eventually

from .conftest import Scraper, debug_section

pytestmark = [pytest.mark.slow, pytest.mark.interop]

HTTP_FAMILIES = (
    "registry_http_requests",
    "registry_http_request_duration_seconds",
    "registry_http_request_size_bytes",
    "registry_http_response_size_bytes",
    "registry_http_in_flight_requests",
)


def same_requests(url: str) -> None:
    """A push by chunks and a pull, and the usual misses, as a client makes them."""
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(5000)
    with httpx.Client(base_url=url, timeout=60) as client:
        expect(client.get("/v2/"), 200)
        expect(client.get("/v2/_catalog"), 200)
        expect(client.get("/v2/compare/app/tags/list"), 404)
        expect(client.get("/v2/compare/app/manifests/missing"), 404)
        for blob in (config, layer):
            expect(client.head(f"/v2/compare/app/blobs/{digest_of(blob)}"), 404)
            location = expect(client.post("/v2/compare/app/blobs/uploads/"), 202).headers["Location"]
            location = expect(client.patch(location, content=blob), 202).headers["Location"]
            # Distribution's Location carries its upload state in the query: keep it.
            separator = "&" if "?" in location else "?"
            expect(client.put(f"{location}{separator}digest={digest_of(blob)}"), 201)
        manifest = image_manifest(config, [layer])
        headers = {"Content-Type": OCI_MANIFEST}
        expect(client.put("/v2/compare/app/manifests/v1", content=manifest, headers=headers), 201)
        expect(client.get("/v2/compare/app/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
        expect(client.get(f"/v2/compare/app/blobs/{digest_of(layer)}"), 200)
        expect(client.get("/v2/compare/app/tags/list"), 200)


def series(scraper: Scraper) -> dict[str, Any]:
    """For each HTTP family: its type and the label sets of its samples (values left out)."""
    families = scraper.families()
    return {
        name: (
            families[name].type,
            {(sample.name, tuple(sorted(sample.labels.items()))) for sample in families[name].samples},
        )
        for name in HTTP_FAMILIES
        if name in families
    }


def test_http_series_match_distribution(
    start_registry: StartRegistry, distribution3: tuple[str, Scraper]
) -> None:
    port = free_port()
    registry = start_registry({"http": debug_section(port)}, workers=2)
    ours_scraper = Scraper(port)
    distribution_url, theirs_scraper = distribution3
    same_requests(registry.url)
    same_requests(distribution_url)
    theirs = series(theirs_scraper)
    assert set(theirs) == set(HTTP_FAMILIES)
    eventually(lambda: same_series(series(ours_scraper), theirs))  # once each worker has flushed


def same_series(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for name, (kind, labelled) in theirs.items():
        assert ours[name][0] == kind, name
        missing = labelled - ours[name][1]
        assert not missing, f"{name}: Distribution has series the registry lacks: {sorted(missing)[:5]}"
    # The same requests were counted under the same codes, handlers and methods, no more.
    assert ours["registry_http_requests"][1] == theirs["registry_http_requests"][1]
