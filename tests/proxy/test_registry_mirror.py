"""Distribution's form: the whole registry mirrors one upstream. Docker's ``registry-mirrors``
sends Docker Hub names to it, and every push is refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.client import assert_error
from tests.support.distribution import DistributionRegistry
from tests.support.dockerd import Dockerd
from tests.support.images import random_image
from tests.support.registry import RunningRegistry, StartRegistry

from .conftest import UPSTREAM_PASSWORD, UPSTREAM_USER, V2, Stored, Upstream

pytestmark = [pytest.mark.interop, pytest.mark.clients]


@pytest.fixture(scope="module")
def whole_mirror(
    start_registry: StartRegistry, distribution_upstream: DistributionRegistry
) -> RunningRegistry:
    proxy = {"remoteurl": distribution_upstream.url, "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD}
    return start_registry(config={"proxy": proxy}, workers=2)


@pytest.fixture(scope="module")
def mirrored_dockerd(
    tmp_path_factory: pytest.TempPathFactory, whole_mirror: RunningRegistry
) -> Iterator[Dockerd]:
    daemon = Dockerd(
        tmp_path_factory.mktemp("mirrored-dockerd"), daemon_config={"registry-mirrors": [whole_mirror.url]}
    ).start()
    yield daemon
    daemon.stop()


def test_docker_pulls_docker_hub_names_through_the_mirror(
    upstream: Upstream, whole_mirror: RunningRegistry, mirrored_dockerd: Dockerd
) -> None:
    image = random_image(layers=2, docker=True)
    # Docker Hub keeps official images under library/; the daemon asks the mirror for that name.
    upstream.push("library/mirrored-busybox", "1.0", image)
    mirrored_dockerd.docker("pull", "mirrored-busybox:1.0")
    pulled = mirrored_dockerd.docker("image", "inspect", "--format", "{{.Id}}", "mirrored-busybox:1.0")
    assert pulled.stdout.strip() == image.config.digest
    stored = f"{V2}/repositories/library/mirrored-busybox/_manifests/tags/1.0/current/link"
    assert Stored(whole_mirror).read(stored) == image.digest.encode()


def test_every_push_is_refused(
    whole_mirror: RunningRegistry, distribution_upstream: DistributionRegistry
) -> None:
    with httpx.Client(base_url=whole_mirror.url, timeout=30) as client:
        for name in ("library/alpine", "team/app", "anything"):
            error = assert_error(client.post(f"/v2/{name}/blobs/uploads/"), 405, "UNSUPPORTED")
            assert error["detail"] == {"upstream": distribution_upstream.url}
        assert client.get("/v2/").status_code == 200
