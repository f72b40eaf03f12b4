"""Pulling through a mirror of CNCF Distribution (htpasswd upstream, plain HTTP): manifests by tag
and digest, multi-platform indexes with skopeo, tags lists, the revalidation window, the upstream
going away, and pushes refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.api.client import assert_error
from tests.support.containers import ContainerTools
from tests.support.distribution import DistributionRegistry
from tests.support.images import every_blob, multi_arch_index, random_image, read_dir_layout
from tests.support.registry import RunningRegistry, StartRegistry

from .conftest import UPSTREAM_PASSWORD, V2, Stored, Upstream, blob_data, mirror_of

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> ContainerTools:
    return ContainerTools(tmp_path_factory.mktemp("proxy-tools"))


def get(registry: RunningRegistry, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{registry.url}{path}", timeout=60, **kwargs)  # type: ignore[arg-type]


def test_skopeo_pulls_a_multi_platform_index_by_tag_and_by_digest(
    upstream: Upstream, mirror: RunningRegistry, tools: ContainerTools, tmp_path: Path
) -> None:
    index = multi_arch_index()
    upstream.push("team/app", "1.0", index)
    wanted = {blob.digest for blob in every_blob(index)}

    tools.skopeo("copy", "--all", f"docker://{mirror.host}/hub/team/app:1.0", f"dir:{tmp_path / 'by-tag'}")
    assert read_dir_layout(tmp_path / "by-tag") == wanted

    arm = index.images[1]
    reference = f"docker://{mirror.host}/hub/team/app@{arm.digest}"
    tools.skopeo("copy", reference, f"dir:{tmp_path / 'by-digest'}")
    assert read_dir_layout(tmp_path / "by-digest") == {blob.digest for blob in every_blob(arm)}

    # Everything is in the mirror's own storage now, linked into the mirrored repository.
    storage = Stored(mirror)
    for blob in every_blob(index):
        assert storage.read(blob_data(blob.digest)) == blob.data
    tags = get(mirror, "/v2/hub/team/app/tags/list")
    assert tags.json() == {"name": "hub/team/app", "tags": ["1.0"]}


def test_tags_list_passes_the_upstreams_through(upstream: Upstream, mirror: RunningRegistry) -> None:
    image = random_image(layers=1)
    for tag in ("a", "b", "c"):
        upstream.push("team/listed", tag, image)
    response = get(mirror, "/v2/hub/team/listed/tags/list")
    assert response.status_code == 200, response.text
    listed = response.json()
    assert listed["name"] == "hub/team/listed"
    assert sorted(listed["tags"]) == ["a", "b", "c"]  # in the upstream's order (2.8 does not sort)
    # Nothing was pulled, yet the upstream's tags are listed: passed through, not cached.
    assert not Stored(mirror).exists(f"{V2}/repositories/hub/team/listed")


WINDOW = 8.0
"""The moved-tag test's revalidation window: far longer than the upstream push it must outlast
takes on a loaded machine."""


def test_a_moved_tag_is_seen_after_the_revalidation_window(
    upstream: Upstream, distribution_upstream: DistributionRegistry, start_registry: StartRegistry
) -> None:
    mirror = start_registry(config=mirror_of(distribution_upstream.url, revalidate=f"{WINDOW:g}s"), workers=2)
    first, second = random_image(layers=1), random_image(layers=1)
    upstream.push("team/moving", "latest", first)
    accept = {"Accept": first.manifest.media_type}
    response = get(mirror, "/v2/hub/team/moving/manifests/latest", headers=accept)
    assert response.headers["Docker-Content-Digest"] == first.digest

    upstream.push("team/moving", "latest", second)
    response = get(mirror, "/v2/hub/team/moving/manifests/latest", headers=accept)
    assert response.headers["Docker-Content-Digest"] == first.digest  # within the window
    time.sleep(WINDOW + 0.2)
    response = get(mirror, "/v2/hub/team/moving/manifests/latest", headers=accept)
    assert response.status_code == 200, response.text
    assert response.headers["Docker-Content-Digest"] == second.digest
    assert response.content == second.manifest.data


def test_pushes_to_a_mirrored_prefix_are_refused_naming_the_upstream(
    upstream: Upstream, mirror: RunningRegistry
) -> None:
    image = random_image(layers=1)
    with httpx.Client(base_url=mirror.url, timeout=30) as client:
        refused = client.post("/v2/hub/team/pushed/blobs/uploads/")
        detail = assert_error(refused, 405, "UNSUPPORTED")["detail"]
        assert detail == {"upstream": upstream.url}
        refused = client.put(
            "/v2/hub/team/pushed/manifests/v1",
            content=image.manifest.data,
            headers={"Content-Type": image.manifest.media_type},
        )
        assert_error(refused, 405, "UNSUPPORTED")
        assert_error(client.delete(f"/v2/hub/team/pushed/manifests/{image.digest}"), 405, "UNSUPPORTED")
        # Beside the prefix, the registry is an ordinary one.
        started = client.post("/v2/local/app/blobs/uploads/")
        assert started.status_code == 202, started.text


def test_the_upstream_down_cached_content_is_served_and_the_rest_is_a_clear_503(
    start_registry: StartRegistry,
    tmp_path_factory: pytest.TempPathFactory,
    tools: ContainerTools,
    tmp_path: Path,
) -> None:
    workdir = tmp_path_factory.mktemp("stopping-upstream")
    distribution = DistributionRegistry(workdir, workdir / "data").start()
    pushing = Upstream(distribution.url, None)
    index = multi_arch_index()
    pushing.push("team/app", "1.0", index)
    mirror = start_registry(config=mirror_of(distribution.url, revalidate="0s"), workers=2)
    tools.skopeo("copy", "--all", f"docker://{mirror.host}/hub/team/app:1.0", f"dir:{tmp_path / 'warm'}")

    distribution.stop()
    started = time.monotonic()
    tools.skopeo("copy", "--all", f"docker://{mirror.host}/hub/team/app:1.0", f"dir:{tmp_path / 'cold'}")
    assert read_dir_layout(tmp_path / "cold") == {blob.digest for blob in every_blob(index)}
    assert "serving hub/team/app:1.0 from the cache as it was" in mirror.log()

    missing = get(mirror, "/v2/hub/team/other/manifests/1.0")
    error = assert_error(missing, 503, "UNAVAILABLE")
    assert error["detail"]["upstream"] == distribution.url
    assert missing.headers["Retry-After"]
    missing_blob = get(mirror, f"/v2/hub/team/app/blobs/sha256:{'0' * 64}")
    assert_error(missing_blob, 503, "UNAVAILABLE")
    assert time.monotonic() - started < 30  # never a hang
    pushing.http.close()


def test_upstream_credentials_never_leave_the_registry(upstream: Upstream, mirror: RunningRegistry) -> None:
    refused = get(mirror, "/v2/hub/nobody/manifests/missing")
    assert_error(refused, 404, "MANIFEST_UNKNOWN")
    assert UPSTREAM_PASSWORD not in refused.text
    assert UPSTREAM_PASSWORD not in mirror.log()


def test_concurrent_pulls_of_a_cold_manifest_make_one_upstream_get(
    start_registry: StartRegistry, upstream: Upstream, distribution_upstream: DistributionRegistry
) -> None:
    mirror = start_registry(config=mirror_of(distribution_upstream.url), workers=4)
    by_digest, by_tag = random_image(layers=1), random_image(layers=1)
    upstream.push("team/many", "digest-only", by_digest)
    upstream.push("team/many", "cold", by_tag)

    async def pull(reference: str, image_type: str) -> bytes:
        async with httpx.AsyncClient(base_url=mirror.url, timeout=60) as client:
            response = await client.get(
                f"/v2/hub/team/many/manifests/{reference}", headers={"Accept": image_type}
            )
            assert response.status_code == 200, response.text
            return response.content

    async def pull_all() -> list[bytes]:
        pulls = [pull(by_digest.digest, by_digest.manifest.media_type) for _ in range(16)]
        pulls += [pull("cold", by_tag.manifest.media_type) for _ in range(16)]
        return await asyncio.gather(*pulls)

    assert asyncio.run(pull_all()) == [by_digest.manifest.data] * 16 + [by_tag.manifest.data] * 16
    log = distribution_upstream.log()

    def answered(method: str, reference: str) -> int:
        uri = f'http.request.uri="/v2/team/many/manifests/{reference}"'
        return sum(
            1
            for line in log.splitlines()
            if "response completed" in line and f"method={method} " in line and uri in line
        )

    assert answered("GET", by_digest.digest) == 1
    assert answered("GET", by_tag.digest) == 1  # the tag's HEADs name the digest: one GET of it
    assert answered("GET", "cold") == 0


def test_podman_pulls_the_platform_of_a_multi_platform_image(
    upstream: Upstream, mirror: RunningRegistry, tools: ContainerTools
) -> None:
    index = multi_arch_index()
    upstream.push("team/podman", "1.0", index)
    arm = index.images[1]
    reference = f"{mirror.host}/hub/team/podman:1.0"
    tools.podman("pull", "--arch", "arm64", "--variant", "v8", reference)
    inspected = tools.podman("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()
    assert f"sha256:{inspected}" == arm.config.digest
    tools.podman("rmi", reference)
