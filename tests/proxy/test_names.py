"""Which upstream repository a mirrored name maps to (Docker Hub's library/ rule), and which
names mirror at all. Names never choose hosts: only configured upstreams are ever found."""

from __future__ import annotations

import pytest

from registry.config import Upstream
from registry.proxy.mirrors import Mirrors
from registry.references import RepositoryName

HUB = Upstream("https://registry-1.docker.io", prefix="dockerhub")
GHCR = Upstream("https://ghcr.io", prefix="ghcr")


@pytest.mark.parametrize(
    ("name", "upstream", "remote"),
    [
        ("dockerhub/alpine", HUB, "library/alpine"),
        ("dockerhub/library/alpine", HUB, "library/alpine"),
        ("dockerhub/bitnami/redis", HUB, "bitnami/redis"),
        ("dockerhub", HUB, ""),  # the prefix itself names nothing upstream
        ("ghcr/alpine", GHCR, "alpine"),  # the rule is Docker Hub's only
        ("ghcr/org/tool", GHCR, "org/tool"),
    ],
)
async def test_prefixed_names_map_to_their_upstream(name: str, upstream: Upstream, remote: str) -> None:
    mirrors = Mirrors((HUB, GHCR))
    mirror = mirrors.find(RepositoryName(name))
    assert mirror is not None
    assert mirror.upstream is upstream
    assert mirror.remote_name(RepositoryName(name)) == remote
    await mirrors.close()


@pytest.mark.parametrize("name", ["dockerhubx/alpine", "team/app", "ghcr.io/org/tool", "localghcr/x"])
async def test_other_names_are_ordinary_repositories(name: str) -> None:
    mirrors = Mirrors((HUB, GHCR))
    assert mirrors.find(RepositoryName(name)) is None
    await mirrors.close()


async def test_the_single_upstream_form_mirrors_every_name_as_it_is() -> None:
    mirrors = Mirrors((Upstream("https://registry-1.docker.io"),))
    for name, remote in [("library/alpine", "library/alpine"), ("alpine", "library/alpine"), ("a/b", "a/b")]:
        mirror = mirrors.find(RepositoryName(name))
        assert mirror is not None
        assert mirror.remote_name(RepositoryName(name)) == remote
    await mirrors.close()
