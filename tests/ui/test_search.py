"""``GET /v1/search``: Docker's search JSON, filtered by pull rights, asked by the real Docker CLI
anonymously and logged in."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.helpers import SERVICE
from tests.support.dockerd import Dockerd
from tests.support.registry import RunningRegistry

from .conftest import DESCRIPTION, PASSWORDS, Filled

pytestmark = pytest.mark.clients  # the registry searched was filled by buildah and skopeo


def search(
    registry: RunningRegistry, headers: dict[str, str] | None = None, /, **params: str
) -> httpx.Response:
    return httpx.get(f"{registry.url}/v1/search", params=params, headers=headers or {}, timeout=30)


def test_docker_search_shape_and_description(open_registry: Filled) -> None:
    answer = search(open_registry.registry, q="team")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert {k: v for k, v in body.items() if k != "results"} == {
        "query": "team",
        "num_results": 3,
        "num_pages": 1,
        "page": 1,
        "page_size": 25,
    }
    assert body["results"][0] == {
        "name": "team/app",
        "description": DESCRIPTION,
        "star_count": 0,
        "is_official": False,
        "is_automated": False,
    }
    assert [result["name"] for result in body["results"]] == ["team/app", "team/layers", "team/multi"]


def test_pages_and_bad_numbers(open_registry: Filled) -> None:
    registry = open_registry.registry
    second = search(registry, q="team/", n="2", page="2").json()
    assert (second["num_results"], second["num_pages"], second["page"]) == (3, 2, 2)
    assert [result["name"] for result in second["results"]] == ["team/multi"]
    assert search(registry, q="no-such-thing").json()["results"] == []
    for params in ({"n": "-1"}, {"n": "zero"}, {"page": "0"}, {"n": "9" * 40}):
        refused = search(registry, q="team", **params)
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
    assert httpx.post(f"{registry.url}/v1/search").status_code == 405


def test_results_follow_pull_rights(token_ui_registry: RunningRegistry) -> None:
    registry = token_ui_registry
    anonymous = search(registry, q="")
    assert [result["name"] for result in anonymous.json()["results"]] == ["public/site"]
    token = httpx.get(
        f"{registry.url}/auth/token",
        params={"service": SERVICE, "scope": "registry:catalog:search"},
        auth=("bob", PASSWORDS["bob"]),
        timeout=10,
    ).json()["token"]
    bob = search(registry, {"Authorization": f"Bearer {token}"}, q="")
    assert [result["name"] for result in bob.json()["results"]] == ["bob/tool", "public/site"]
    refused = search(registry, {"Authorization": "Bearer not-a-token"}, q="")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer ")


def test_docker_cli_searches_anonymously(open_registry: Filled, dockerd: Dockerd) -> None:
    registry = open_registry.registry
    found = dockerd.docker("search", "--no-trunc", f"{registry.host}/team")
    lines = found.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "DESCRIPTION"]
    assert [line.split()[0] for line in lines[1:]] == ["team/app", "team/layers", "team/multi"]
    assert DESCRIPTION in lines[1]
    limited = dockerd.docker("search", "--limit", "1", f"{registry.host}/team")
    assert len(limited.stdout.splitlines()) == 2


def test_docker_cli_searches_logged_in(token_ui_registry: RunningRegistry, dockerd: Dockerd) -> None:
    registry = token_ui_registry
    anonymous = dockerd.docker("search", f"{registry.host}/")
    assert [line.split()[0] for line in anonymous.stdout.splitlines()[1:]] == ["public/site"]
    dockerd.docker("login", "--username", "bob", "--password-stdin", registry.host, stdin=PASSWORDS["bob"])
    try:
        found = dockerd.docker("search", f"{registry.host}/")
        assert [line.split()[0] for line in found.stdout.splitlines()[1:]] == ["bob/tool", "public/site"]
    finally:
        dockerd.docker("logout", registry.host)
