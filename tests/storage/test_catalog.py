"""The catalog: repositories holding manifests, in lexical order, one page at a time (the walk
checked against brute force: every page after every ``last`` is the sorted names)."""

from __future__ import annotations

import random

import pytest

from registry.references import is_repository_name
from registry.storage import Storage, paths
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


async def storage_with(names: list[str], marker: str) -> InMemoryDriver:
    driver = InMemoryDriver()
    for name in names:
        await driver.put_content(f"{paths.REPOSITORIES}/{name}/{marker}/x", b"")
    return driver


@pytest.mark.parametrize("seed", range(8))
async def test_every_page_after_every_last_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    names = random_names(rng, 60)
    driver = await storage_with(names, paths.MANIFESTS_DIR)
    await driver.put_content(f"{paths.REPOSITORIES}/{names[0]}/_uploads/u/data", b"")  # not a marker
    catalog = Catalog(driver)
    probes = names + [name + suffix for name in names[::7] for suffix in ("-", ".", "/", "0")]
    for last in [None, *probes]:
        expected = [n for n in names if last is None or n > last]
        for limit in (1, 3, 100):
            page, more = await catalog.page(limit, last)
            assert page == expected[:limit], (last, limit)
            assert more == (len(expected) > limit)


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
