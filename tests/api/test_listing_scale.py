"""The catalog and a tags list larger than any listing memory used to hold, walked page by page.

The store is written directly in Distribution's layout (pushing 33,000 repositories would take
minutes), its directories dated a minute back as in a store that has settled, then served by a
registry of its own with two workers, so the pages land on both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from registry.references import RepositoryName
from registry.storage import paths
from storage_drivers.filesystem import FilesystemDriver
from tests.support.registry import StartRegistry

from .client import RegistryClient, next_link

COUNT = 33_000
"""Above 32,768: the most names the listing memory used to keep."""
TRICKY = ["r-00100-b", "r-00100.b", "r-00100/nested", "r-32999-z"]
"""Names S3 and a plain sort of directory paths order differently from the names themselves."""
TAGGED = RepositoryName("scale/tagged")
REPOSITORIES = sorted(
    [f"scale/r-{index:05d}" for index in range(COUNT)] + [f"scale/{t}" for t in TRICKY] + [TAGGED]
)
TAGS = sorted([f"t-{index:05d}" for index in range(COUNT)] + ["t-00100-rc1", "t-00100.1", "t"])


def write_store(root: Path) -> None:
    """The directories and links the lists read; untouched by the registry."""
    repositories = root / paths.REPOSITORIES.lstrip("/")
    for name in REPOSITORIES:
        (repositories / name / paths.MANIFESTS_DIR).mkdir(parents=True)
    tags = root / paths.tags(TAGGED).lstrip("/")
    tags.mkdir(parents=True)
    for tag in TAGS:
        (tags / tag).mkdir()  # the list reads names only: no links below, to keep the store small
    settled = time.time() - 60
    for directory in (repositories, repositories / "scale", tags):
        os.utime(directory, (settled, settled))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    write_store(root)
    return root


@pytest.fixture(scope="module")
def client(start_registry: StartRegistry, store: Path) -> Iterator[RegistryClient]:
    registry = start_registry({"catalog": {"maxentries": 1000}}, root=store)
    http = RegistryClient(registry.url)
    try:
        yield http
    finally:
        http.close()
        registry.stop()


def walk(client: RegistryClient, url: str, key: str, page_size: int) -> list[str]:
    """Follow ``Link`` from ``url`` to the end; every page but the last is full and links on."""
    seen: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        page = response.json()[key]
        next_url = next_link(response)
        if next_url is not None:
            assert len(page) == page_size
            query = parse_qs(urlsplit(next_url).query)
            assert query == {"n": [str(page_size)], "last": [page[-1]]}
        else:
            assert 0 < len(page) <= page_size
        seen += page
    return seen


def test_catalog_walks_every_repository_once_in_order(client: RegistryClient) -> None:
    assert walk(client, "/v2/_catalog?n=1000", "repositories", 1000) == REPOSITORIES


CATALOG_LASTS = ["scale/r-32767", "scale/r-00100", "scale/r-00100-b", "scale/r-0010", "scale/r-00100/"]
CATALOG_LASTS += ["scale/r", "scale/r-1 x", "scale/r-\u00e9", "scale/r-5/../x", "scale/\x00", "scale//r"]
TAGS_LASTS = ["t-32767", "t-00100", "t-00100-rc1", "t-0010", "t", "s", "t-32999", "t-\u00e9", "t-0\x01"]


@pytest.mark.parametrize("last", CATALOG_LASTS)
def test_catalog_page_after_any_last(client: RegistryClient, last: str) -> None:
    response = client.get("/v2/_catalog", params={"n": "100", "last": last})
    assert response.status_code == 200, response.text
    assert response.json()["repositories"] == [name for name in REPOSITORIES if name > last][:100]


def test_tags_walk_every_tag_once_in_order(client: RegistryClient) -> None:
    assert walk(client, f"/v2/{TAGGED}/tags/list?n=1000", "tags", 1000) == TAGS


@pytest.mark.parametrize("last", TAGS_LASTS)
def test_tags_page_after_any_last(client: RegistryClient, last: str) -> None:
    response = client.get(f"/v2/{TAGGED}/tags/list", params={"n": "100", "last": last})
    assert response.status_code == 200, response.text
    expected = [tag for tag in TAGS if tag > last]
    assert response.json()["tags"] == expected[:100]
    assert (next_link(response) is not None) == (len(expected) > 100)


def test_whole_tags_list_without_n(client: RegistryClient) -> None:
    response = client.get(f"/v2/{TAGGED}/tags/list")
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == TAGS
    assert "Link" not in response.headers


async def test_the_filesystem_driver_pages_a_settled_directory_without_reading_it_again(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FilesystemDriver(str(store))
    directory = paths.tags(TAGGED)
    assert len(await driver.list(directory)) == len(TAGS)
    scandirs: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: str) -> Iterator[os.DirEntry[str]]:
        scandirs.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    after = None
    for _ in range(50):
        page = await driver.list(directory, after=after, limit=100)
        expected = [tag for tag in TAGS if after is None or tag > after][:100]
        assert [entry.rsplit("/", 1)[1] for entry in page] == expected
        after = page[-1].rsplit("/", 1)[1]
    assert scandirs == [], "a page read the whole directory again"
