"""Listing repositories (``/v2/_catalog``): lexical order, pagination, ``catalog.maxentries``.

The catalog lists every repository, so these tests run a registry of their own (with
``catalog.maxentries: 5``) holding exactly the repositories pushed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.registry import StartRegistry

from .client import RegistryClient, assert_error, media_type, next_link
from .conftest import variant
from .content import image_config, image_manifest

MAX_ENTRIES = 5
REPOSITORIES = ["a", "a-b", "a.b", "a/b", "a/b/c", "a_b", "a__b", "ab", "b", "b/a", "z0/y/x", "z1"]
ORDERED = sorted(REPOSITORIES)  # byte order: "-" < "." < "/" < "_" < letters
UNLISTED = "only/blobs"  # a repository with blobs but no manifest is not listed


@pytest.fixture(scope="module")
def catalog(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    with variant(start_registry, {"catalog": {"maxentries": MAX_ENTRIES}}) as (_, client):
        config = image_config()
        manifest = image_manifest(config)
        for name in REPOSITORIES:
            client.push_blob(name, config)
            client.push_manifest(name, "latest", manifest)
        client.push_blob(UNLISTED, config)
        yield client


def catalog_page(client: RegistryClient, url: str, params: dict[str, str] | None = None) -> httpx.Response:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    assert set(response.json()) == {"repositories"}
    return response


def walk(client: RegistryClient, url: str, page_size: int) -> list[str]:
    """Follow ``Link`` from ``url`` to the end; every page but the last is full."""
    seen: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        response = catalog_page(client, next_url)
        page = response.json()["repositories"]
        next_url = next_link(response)
        if next_url is not None:
            assert len(page) == page_size
            parts = urlsplit(next_url)
            assert parts.path == "/v2/_catalog"
            assert parse_qs(parts.query) == {"n": [str(page_size)], "last": [page[-1]]}
        else:
            assert 0 < len(page) <= page_size
        seen += page
    return seen


def test_order_is_lexical() -> None:
    assert ORDERED[:7] == ["a", "a-b", "a.b", "a/b", "a/b/c", "a__b", "a_b"]


@pytest.mark.parametrize("page_size", [1, 2, 3, 5])
def test_follow_link_to_the_end(catalog: RegistryClient, page_size: int) -> None:
    assert walk(catalog, f"/v2/_catalog?n={page_size}", page_size) == ORDERED


def test_default_page_is_maxentries(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog")
    assert response.json()["repositories"] == ORDERED[:MAX_ENTRIES]
    assert walk(catalog, "/v2/_catalog", MAX_ENTRIES) == ORDERED


def test_n_above_maxentries_is_clamped(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog", {"n": "1000"})
    assert response.json()["repositories"] == ORDERED[:MAX_ENTRIES]
    link = next_link(response)
    assert link is not None
    assert parse_qs(urlsplit(link).query) == {"n": [str(MAX_ENTRIES)], "last": [ORDERED[MAX_ENTRIES - 1]]}


def test_n_and_last(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog", {"n": "2", "last": "a/b"})
    assert response.json()["repositories"] == ["a/b/c", "a__b"]
    assert next_link(response) is not None


def test_last_that_is_not_a_repository(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog", {"n": "3", "last": "a/a"})
    assert response.json()["repositories"] == ["a/b", "a/b/c", "a__b"]


def test_last_page_has_no_link(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog", {"n": "5", "last": ORDERED[-3]})
    assert response.json()["repositories"] == ORDERED[-2:]
    assert "Link" not in response.headers


def test_last_after_everything_is_empty(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog", {"last": ORDERED[-1]})
    assert response.json() == {"repositories": []}
    assert "Link" not in response.headers


def test_n_zero_is_empty_without_link(catalog: RegistryClient) -> None:
    response = catalog_page(catalog, "/v2/_catalog", {"n": "0"})
    assert response.json() == {"repositories": []}
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "x", "2.0", "99999999999999999999"])
def test_invalid_n_is_400(catalog: RegistryClient, n: str) -> None:
    assert_error(catalog.get("/v2/_catalog", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


def test_repository_without_manifests_is_not_listed(catalog: RegistryClient) -> None:
    assert UNLISTED not in walk(catalog, f"/v2/_catalog?n={MAX_ENTRIES}", MAX_ENTRIES)
