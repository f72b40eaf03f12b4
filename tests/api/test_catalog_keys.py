"""The catalog over a store of more keys than one S3 listing holds, with names whose keys sort
apart from the names (``team/app/...`` after ``team/app-1/...`` and ``team/app/0/...``) and a
repository of many keys, walked page by page through the server.

On S3 (``--registry-storage s3``) the catalog reads the keys below the repositories in order
from ``last``, a thousand per call; on the filesystem it walks directories. Both must give every
name once, in order. The store is written through the storage driver, not pushed.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from registry.storage import paths
from storage_drivers import create_driver
from tests.support.registry import StartRegistry

from .client import RegistryClient, next_link

LINK = "sha256/" + "a" * 64 + "/link"
PLAIN = [f"team/svc-{index:04d}" for index in range(400)]
TRICKY = [
    "team/app", "team/app-1", "team/app.x", "team/app/0", "team/app/0/1", "team/app/b", "team/app_z",
    "team/svc-0100", "team/svc-0100-b", "team/svc-0100.b", "team/svc-0100/9", "team/svc-0399-z",
    "team/svc", "team/svc-", "zz",
]  # fmt: skip
HEAVY = "team/svc-0200"
"""Holds many keys of its own: the scan steps over them."""
NOT_LISTED = ["team/blobs-only", "team/svc-0300/uploads-only"]
REPOSITORIES = sorted({*PLAIN, *(name for name in TRICKY if name != "team/svc-")})


def keys() -> list[str]:
    base = paths.REPOSITORIES
    written = []
    for name in REPOSITORIES:
        written += [
            f"{base}/{name}/{paths.LAYERS_DIR}/{LINK}",
            f"{base}/{name}/{paths.MANIFESTS_DIR}/revisions/{LINK}",
            f"{base}/{name}/{paths.MANIFESTS_DIR}/tags/latest/current/link",
        ]
    written += [
        f"{base}/{HEAVY}/{paths.MANIFESTS_DIR}/tags/t{index:04d}/current/link" for index in range(1200)
    ]
    written += [f"{base}/team/blobs-only/{paths.LAYERS_DIR}/{LINK}"]
    written += [f"{base}/team/svc-0300/uploads-only/{paths.UPLOADS_DIR}/u/data"]
    written += [f"{base}/team/svc-/{paths.UPLOADS_DIR}/u/data"]  # not a name, and not a repository
    return written


@pytest.fixture(scope="module")
def client(start_registry: StartRegistry) -> Iterator[RegistryClient]:
    registry = start_registry({"catalog": {"maxentries": 1000}})
    ((driver_name, parameters),) = registry.storage.items()
    driver = create_driver(driver_name, parameters)

    async def write() -> None:
        limiter = anyio.CapacityLimiter(16)

        async def put(key: str) -> None:
            async with limiter:
                await driver.put_content(key, b"sha256:" + b"a" * 64)

        async with anyio.create_task_group() as group:
            for key in keys():
                group.start_soon(put, key)
        await driver.close()

    anyio.run(write)
    http = RegistryClient(registry.url)
    try:
        yield http
    finally:
        http.close()
        registry.stop()


def page(client: RegistryClient, n: int, last: str | None) -> tuple[list[str], str | None]:
    params = {"n": str(n)} if last is None else {"n": str(n), "last": last}
    response = client.get("/v2/_catalog", params=params)
    assert response.status_code == 200, response.text
    names: list[str] = response.json()["repositories"]
    return names, next_link(response)


@pytest.mark.parametrize("n", [100, 7])
def test_walk_gives_every_repository_once_in_order(client: RegistryClient, n: int) -> None:
    seen: list[str] = []
    last: str | None = None
    while True:
        names, link = page(client, n, last)
        seen += names
        if link is None:
            break
        assert len(names) == n
        last = names[-1]
    assert seen == REPOSITORIES
    assert not set(NOT_LISTED) & set(seen)


LASTS = [
    "team/ap", "team/app", "team/app-1", "team/app.x", "team/app/", "team/app/0", "team/app/0/1",
    "team/svc", "team/svc-0099", "team/svc-0100", "team/svc-0100-b", "team/svc-0100/", "team/svc-0199",
    "team/svc-0200", "team/svc-03", "team/svc-0399", "team/svc-0399-z", "team/\u00e9", "z", "zz",
]  # fmt: skip


@pytest.mark.parametrize("last", LASTS)
def test_page_after_any_last(client: RegistryClient, last: str) -> None:
    names, link = page(client, 100, last)
    expected = [name for name in REPOSITORIES if name > last]
    assert names == expected[:100]
    assert (link is not None) == (len(expected) > 100)
