"""Search and the repository list over more repositories than a page of the catalog, filtered by
the access rules: an account that may pull only ``team/*`` finds its repositories, which sort
after a hundred and twenty others, and nothing else; a repository pushed later appears."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from auth.keygen import GeneratedKey
from registry.storage import paths
from tests.auth.helpers import ISSUER, SERVICE, write_htpasswd
from tests.support.images import random_image
from tests.support.pushing import push_content
from tests.support.registry import RunningRegistry, StartRegistry

OTHERS = [f"aaa/app{number:03d}" for number in range(120)]
TEAM = ["team/app-one", "team/app-two"]
PUBLIC = "zzz/app"
PASSWORDS = {"ops": "ops-secret-3", "admin": "admin-secret-4"}
RULES = [
    {"account": "ops", "repository": "team/*", "actions": ["pull"]},
    {"account": "admin", "repository": "*", "actions": ["pull"]},
    {"anonymous": True, "repository": "zzz/*", "actions": ["pull"]},
]
APPEARS_WITHIN = 60.0
"""Seconds a new repository may take to reach every worker's list (a bound, not a measure)."""


def _token_registry(
    start_registry: StartRegistry, filled: RunningRegistry, key: GeneratedKey, directory: Path
) -> RunningRegistry:
    """A registry with the built-in token server and ``RULES``, on ``filled``'s storage."""
    token = {
        "realm": "http://127.0.0.1:9/auth/token",  # replaced below, once the port is known
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(key.certificate_path),
    }
    server = {
        "issuer": ISSUER,
        "service": SERVICE,
        "signingkey": str(key.key_path),
        "certificate": str(key.certificate_path),
        "htpasswd": str(write_htpasswd(directory / "htpasswd", PASSWORDS)),
        "acl": RULES,
    }
    registry = start_registry(
        config={"storage": filled.storage, "auth": {"token": token}, "tokenserver": server}
    )
    registry.config["auth"]["token"]["realm"] = f"{registry.url}/auth/token"
    registry.restart()
    return registry


def _bearer(registry: RunningRegistry, account: str) -> dict[str, str]:
    """``docker search``'s own kind of token: it names the account and no repository."""
    response = httpx.get(
        f"{registry.url}/auth/token",
        params={"service": SERVICE, "scope": "registry:catalog:search"},
        auth=(account, PASSWORDS[account]),
        timeout=10,
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _searched(registry: RunningRegistry, headers: dict[str, str], **params: str) -> dict[str, object]:
    response = httpx.get(f"{registry.url}/v1/search", params=params, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _names(body: dict[str, object]) -> list[str]:
    results = body["results"]
    assert isinstance(results, list)
    return [result["name"] for result in results]


def _listed(registry: RunningRegistry, headers: dict[str, str], query: str = "") -> list[str]:
    response = httpx.get(
        f"{registry.url}/ui/", params={"q": query} if query else {}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return re.findall(r'<li><a href="/ui/r/([^"]+)">', response.text)


def test_search_reaches_past_the_first_pages_and_follows_the_rules(
    start_registry: StartRegistry, ui_token_key: GeneratedKey, tmp_path: Path
) -> None:
    filler = start_registry()
    image = random_image(1, 1024)
    with httpx.Client(base_url=filler.url, timeout=60) as client:
        for name in [*OTHERS, *TEAM, PUBLIC]:
            push_content(client, name, "1.0", image)
    registry = _token_registry(start_registry, filler, ui_token_key, tmp_path)
    ops, admin = _bearer(registry, "ops"), _bearer(registry, "admin")

    everything = _searched(registry, admin, q="app", n="25", page="5")
    assert (everything["num_results"], everything["num_pages"]) == (123, 5)
    assert _names(everything) == [*OTHERS[100:], *TEAM, PUBLIC]

    found = _searched(registry, ops, q="app")
    assert (found["num_results"], _names(found)) == (2, TEAM)
    assert _names(_searched(registry, ops, q="app-two")) == ["team/app-two"]
    assert _names(_searched(registry, ops, q="aaa")) == []
    assert _names(_searched(registry, {}, q="app")) == [PUBLIC]
    assert _listed(registry, ops) == TEAM
    assert _listed(registry, ops, "two") == ["team/app-two"]
    assert _listed(registry, admin)[:50] == OTHERS[:50]
    assert _listed(registry, {}) == [PUBLIC]
    assert httpx.get(f"{registry.url}/ui/r/{OTHERS[0]}", headers=ops, timeout=30).status_code == 404

    with httpx.Client(base_url=filler.url, timeout=60) as client:
        push_content(client, "team/app-three", "1.0", image)
    expected = ["team/app-one", "team/app-three", "team/app-two"]
    deadline = time.monotonic() + APPEARS_WITHIN
    while _names(_searched(registry, ops, q="app")) != expected or _listed(registry, ops) != expected:
        assert time.monotonic() < deadline, "a new repository never reached the list and search"
        time.sleep(0.5)


def test_workers_share_a_recent_walk_through_the_storage(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """A worker reads the list another worker or replica wrote while it is recent (so a name
    that record holds is found although no walk would find it), and walks again once it is old."""
    root = tmp_path / "data"
    filler = start_registry(root=root)
    with httpx.Client(base_url=filler.url, timeout=60) as client:
        push_content(client, "team/stored", "1.0", random_image(1, 1024))
    record = root / paths.ui_repository_names().lstrip("/")
    record.parent.mkdir(parents=True)
    # As a walk that took 2 s writes it: recent for 20 s.
    record.write_text(f"dockyard-repository-names 1 {time.time()!r} 2.0\nteam/recorded\nteam/stored")
    registry = start_registry(root=root)
    shown = _names(_searched(registry, {}, q="team"))
    assert shown == ["team/recorded", "team/stored"]
    deadline = time.monotonic() + APPEARS_WITHIN
    while _names(_searched(registry, {}, q="team")) != ["team/stored"] or _listed(registry, {}) != [
        "team/stored"
    ]:
        assert time.monotonic() < deadline, "the old record was never replaced by a walk"
        time.sleep(0.5)
    assert record.read_text().splitlines()[1:] == ["team/stored"]


def test_a_read_only_registry_lists_without_writing(start_registry: StartRegistry, tmp_path: Path) -> None:
    root = tmp_path / "data"
    filler = start_registry(root=root)
    with httpx.Client(base_url=filler.url, timeout=60) as client:
        push_content(client, "team/kept", "1.0", random_image(1, 1024))
    read_only = start_registry({"storage": {"maintenance": {"readonly": {"enabled": True}}}}, root=root)
    assert _listed(read_only, {}) == ["team/kept"]
    assert _names(_searched(read_only, {}, q="kept")) == ["team/kept"]
    record = root / paths.ui_repository_names().lstrip("/")
    assert not record.exists()
    assert _listed(filler, {}) == ["team/kept"]  # where writes are allowed, the record is written
    deadline = time.monotonic() + APPEARS_WITHIN
    while not record.exists():
        assert time.monotonic() < deadline, "the registry never shared its list"
        time.sleep(0.2)
