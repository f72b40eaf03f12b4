"""The catalog: repositories holding manifests, in lexical order, one page at a time (the walk
checked against brute force: every page after every ``last`` is the sorted names), by walking
directories or, where the driver scans keys (S3, the in-memory driver), from a scan."""

from __future__ import annotations

import random

import pytest

from registry.references import is_repository_name
from registry.storage import Storage, paths
from registry.storage import catalog as catalog_module
from registry.storage.catalog import Catalog, walk_repositories
from storage_drivers.inmemory import InMemoryDriver
from tests.support.images import random_image

from .recording import put_blob, put_image, repository


def random_names(rng: random.Random, count: int) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        parts = range(rng.randint(1, 3))
        name = "/".join("".join(rng.choice("ab-._9") for _ in range(rng.randint(1, 4))) for _ in parts)
        if is_repository_name(name):
            names.add(name)
    return sorted(names)


class WalkedDriver(InMemoryDriver):
    """The in-memory driver without a key scan, as the filesystem driver: the catalog walks."""

    async def _scan(self, path: str, after: str, limit: int) -> None:
        return None


class CountingDriver(InMemoryDriver):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def _scan(self, path: str, after: str, limit: int) -> list[str] | None:
        self.calls.append(f"scan {after}")
        return await super()._scan(path, after, limit)

    async def _list(self, path: str, after: str | None, limit: int | None) -> list[str]:
        self.calls.append(f"list {path}")
        return await super()._list(path, after, limit)


async def storage_with(names: list[str], marker: str, driver: InMemoryDriver | None = None) -> InMemoryDriver:
    driver = driver or InMemoryDriver()
    for name in names:
        await driver.put_content(f"{paths.REPOSITORIES}/{name}/{marker}/x", b"")
    return driver


# The scan reads this many keys at a time: 1000 reads every test store at once; the small ones
# make pages end mid-repository and names wait for the starts that sort before them.
SCANS = {"walk": None, "scan-1000": 1000, "scan-1": 1, "scan-2": 2, "scan-7": 7}


@pytest.mark.parametrize("listing", SCANS)
@pytest.mark.parametrize("seed", range(8))
async def test_every_page_after_every_last_matches_brute_force(
    seed: int, listing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    names = random_names(rng, 60)
    batch = SCANS[listing]
    if batch is not None:
        monkeypatch.setattr(catalog_module, "SCAN_BATCH", batch)
    driver = await storage_with(names, paths.MANIFESTS_DIR, WalkedDriver() if batch is None else None)
    for name in names[::3]:  # keys on both sides of the marker, and several of it
        for key in ("_layers/sha256/aa/link", "_manifests/tags/t/current/link", "_uploads/u/data"):
            await driver.put_content(f"{paths.REPOSITORIES}/{name}/{key}", b"")
    await driver.put_content(f"{paths.REPOSITORIES}/{names[0]}/_uploads/u/data", b"")  # not a marker
    catalog = Catalog(driver)
    probes = names + [name + suffix for name in names[::7] for suffix in ("-", ".", "/", "0")]
    for last in [None, *probes]:
        expected = [n for n in names if last is None or n > last]
        for limit in (1, 3, 100):
            page, more = await catalog.page(limit, last)
            assert page == expected[:limit], (last, limit)
            assert more == (len(expected) > limit)


async def test_a_scanned_page_costs_a_call_not_one_per_repository() -> None:
    driver = CountingDriver()
    names = [f"team/app-{index:04}" for index in range(600)]
    await storage_with(names, paths.MANIFESTS_DIR, driver)
    for name in names:
        await driver.put_content(f"{paths.REPOSITORIES}/{name}/_layers/sha256/aa/link", b"")
    assert await Catalog(driver).page(100, None) == (names[:100], True)
    # A scan of 102 keys finds 51 names of two keys each; the next reads enough for the rest.
    # "team/app", which would come first but whose keys sort after theirs, is looked up.
    lookup = f"list {paths.REPOSITORIES}/team/app/_manifests"
    assert driver.calls == ["scan ", lookup, "scan team/app-0050/_~"]
    driver.calls.clear()
    assert await Catalog(driver).page(100, "team/app-0099") == (names[100:200], True)
    assert driver.calls == ["scan team/app-0099", "scan team/app-0149/_~"]  # "team/app" is before it


async def test_a_large_repository_is_skipped_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "SCAN_BATCH", 10)
    driver = CountingDriver()
    await storage_with(["a", "b", "c"], paths.MANIFESTS_DIR, driver)
    for index in range(200):
        await driver.put_content(f"{paths.REPOSITORIES}/b/_layers/sha256/{index:03}/link", b"")
        await driver.put_content(f"{paths.REPOSITORIES}/b/_manifests/tags/t{index:03}/current/link", b"")
    assert await Catalog(driver).page(10, None) == (["a", "b", "c"], False)
    assert len(driver.calls) <= 4, driver.calls


async def test_walk_finds_repositories_by_their_marker_only() -> None:
    driver = await storage_with(["a", "a/b", "c"], paths.MANIFESTS_DIR)
    await driver.put_content(f"{paths.REPOSITORIES}/a/b/{paths.UPLOADS_DIR}/u/startedat", b"")
    await driver.put_content(f"{paths.REPOSITORIES}/UPPER/{paths.MANIFESTS_DIR}/x", b"")
    found = [name async for name in walk_repositories(driver, paths.UPLOADS_DIR)]
    assert found == ["a/b"]
    assert [name async for name in walk_repositories(driver, paths.MANIFESTS_DIR)] == ["a", "a/b", "c"]


async def test_repositories_appear_once_a_manifest_is_pushed(storage: Storage) -> None:
    assert await storage.catalog.page(10, None) == ([], False)
    await put_blob(storage, repository("blobs/only"), b"a layer")  # no manifest: not in the catalog
    await storage.uploads.start(repository("uploads/only"))
    for name in ("zeta", "alpha/one", "alpha", "alpha-two"):
        await put_image(storage, repository(name), random_image(layers=1, layer_size=64))
    assert await storage.catalog.page(10, None) == (["alpha", "alpha-two", "alpha/one", "zeta"], False)
    assert await storage.catalog.page(2, None) == (["alpha", "alpha-two"], True)
    assert await storage.catalog.page(2, "alpha-two") == (["alpha/one", "zeta"], False)
    assert await storage.catalog.page(2, "zeta") == ([], False)
