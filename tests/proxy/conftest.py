"""An upstream registry (CNCF Distribution 2.8 with htpasswd) and mirrors of it for the cache tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from storage_drivers import PathNotFound, StorageDriver, create_driver
from tests.auth.helpers import write_htpasswd
from tests.support.distribution import DistributionRegistry
from tests.support.images import Blob, Image, ImageIndex
from tests.support.registry import RunningRegistry, StartRegistry

_T = TypeVar("_T")

UPSTREAM_USER = "mirror-bot"
V2 = "/docker/registry/v2"
UPSTREAM_PASSWORD = "upstream-password-7f3a"


class Upstream:
    """A registry the tests push to directly, as the world would, and then pull through a mirror."""

    def __init__(self, url: str, auth: tuple[str, str] | None, verify: str | bool = False) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, auth=auth, timeout=60, verify=verify)

    def push_blob(self, repo: str, blob: Blob) -> None:
        response = self.http.post(f"/v2/{repo}/blobs/uploads/")
        assert response.status_code == 202, response.text
        location = httpx.URL(response.headers["Location"])
        response = self.http.put(location.copy_merge_params({"digest": blob.digest}), content=blob.data)
        assert response.status_code == 201, response.text

    def push(self, repo: str, reference: str, content: Image | ImageIndex) -> None:
        images = content.images if isinstance(content, ImageIndex) else [content]
        for image in images:
            for blob in image.blobs:
                self.push_blob(repo, blob)
            if image is not content:
                self.push_manifest(repo, image.digest, image.manifest)
        self.push_manifest(repo, reference, content.manifest)

    def push_manifest(self, repo: str, reference: str, manifest: Blob) -> None:
        response = self.http.put(
            f"/v2/{repo}/manifests/{reference}",
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def distribution_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionRegistry]:
    """Distribution 2.8 asking for htpasswd credentials."""
    workdir = tmp_path_factory.mktemp("upstream")
    htpasswd = write_htpasswd(workdir / "htpasswd", {UPSTREAM_USER: UPSTREAM_PASSWORD})
    auth = {"auth": {"htpasswd": {"realm": "upstream", "path": str(htpasswd)}}}
    registry = DistributionRegistry(workdir, workdir / "data", auth)
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def upstream(distribution_upstream: DistributionRegistry) -> Iterator[Upstream]:
    pushing = Upstream(distribution_upstream.url, (UPSTREAM_USER, UPSTREAM_PASSWORD))
    yield pushing
    pushing.http.close()


MirrorConfig = Callable[..., dict[str, Any]]


def mirror_of(url: str, prefix: str = "hub", **options: Any) -> dict[str, Any]:
    """A ``proxy`` section mirroring ``url`` under ``prefix`` with the upstream's credentials."""
    upstream = {"prefix": prefix, "remoteurl": url, "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD}
    return {"proxy": {"upstreams": [{**upstream, **options}]}}


@pytest.fixture(scope="module")
def mirror(start_registry: StartRegistry, distribution_upstream: DistributionRegistry) -> RunningRegistry:
    """A registry mirroring the upstream under ``hub/`` (two workers), revalidating tags after 2 s."""
    return start_registry(config=mirror_of(distribution_upstream.url, revalidate="2s"), workers=2)


def blob_data(digest: str) -> str:
    """Where a blob's bytes are stored (a storage path)."""
    hex_digest = digest.removeprefix("sha256:")
    return f"{V2}/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


class Stored:
    """A registry's storage, read through the driver it is configured with: the tests check
    what a mirror stored the same way on every backend."""

    def __init__(self, registry: RunningRegistry) -> None:
        ((self._name, self._parameters),) = registry.storage.items()

    def _run(self, use: Callable[[StorageDriver], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            driver = create_driver(self._name, self._parameters)
            try:
                return await use(driver)
            finally:
                await driver.close()

        return asyncio.run(run())

    def read(self, path: str) -> bytes | None:
        async def read(driver: StorageDriver) -> bytes | None:
            try:
                return await driver.get_content(path)
            except PathNotFound:
                return None

        return self._run(read)

    def exists(self, path: str) -> bool:
        """Whether a file or a directory (anything below it) is stored at ``path``."""
        return self.each_exists([path])[0]

    def each_exists(self, paths: list[str]) -> list[bool]:
        """``exists`` for each of ``paths``, through one driver."""

        async def exists(driver: StorageDriver) -> list[bool]:
            found = []
            for path in paths:
                try:
                    await driver.stat(path)
                except PathNotFound:
                    found.append(False)
                else:
                    found.append(True)
            return found

        return self._run(exists)

    def files(self, path: str) -> list[str]:
        """Every file below ``path``."""

        async def files(driver: StorageDriver) -> list[str]:
            try:
                return [info.path async for info in driver.walk(path)]
            except PathNotFound:
                return []

        return self._run(files)

    def write(self, path: str, data: bytes) -> None:
        self._run(lambda driver: driver.put_content(path, data))
