"""The catalog with the built-in token server: the README's sample rules let signed-in users
browse it, and each account sees only the repositories it may pull, page by page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from auth.keygen import GeneratedKey
from tests.support.containers import ContainerTools
from tests.support.pushing import push_image
from tests.support.registry import PROJECT, RunningRegistry, StartRegistry

from .helpers import ISSUER, SERVICE, challenge_params, write_htpasswd
from .servers import PASSWORDS, token_server_section

REPOSITORIES = ["alice/app", "alice/tools/cli", "bob/app", "other/secret", "public/base", "public/z"]
SEEN = {
    "alice": ["alice/app", "alice/tools/cli", "public/base", "public/z"],
    "bob": ["bob/app", "public/base", "public/z"],
}


def readme_acl() -> list[dict[str, Any]]:
    """The token server rules exactly as the README offers them for copying."""
    blocks = re.findall(r"```yaml\n(.*?)```", (PROJECT / "README.md").read_text(), re.DOTALL)
    sample = next(yaml.safe_load(block) for block in blocks if "tokenserver:" in block)
    return list(sample["tokenserver"]["acl"])


@pytest.fixture(scope="module")
def registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory, es256_key: GeneratedKey
) -> RunningRegistry:
    root = tmp_path_factory.mktemp("catalog-acl") / "data"
    seeding = start_registry(workers=1, root=root)  # open: writes every repository
    with httpx.Client(base_url=seeding.url, timeout=30) as client:
        for name in REPOSITORIES:
            push_image(client, name, "v1")
    seeding.stop()
    htpasswd = write_htpasswd(root.parent / "htpasswd", PASSWORDS)
    token = {
        "realm": "http://127.0.0.1:9/auth/token",  # replaced below, once the port is known
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(es256_key.certificate_path),
    }
    tokenserver = {**token_server_section(es256_key, htpasswd), "acl": readme_acl()}
    del tokenserver["groups"]
    registry = start_registry({"auth": {"token": token}, "tokenserver": tokenserver}, root=root)
    registry.config["auth"]["token"]["realm"] = f"{registry.url}/auth/token"
    return registry.restart()


def catalog_token(registry: RunningRegistry, user: str | None) -> str:
    auth = (user, PASSWORDS[user]) if user else None
    response = httpx.get(
        f"{registry.url}/auth/token",
        params={"service": SERVICE, "scope": "registry:catalog:*"},
        auth=auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def whole_catalog(registry: RunningRegistry, token: str, n: int | None) -> tuple[list[str], int]:
    """Every name, following Link headers; and how many pages that took."""
    names: list[str] = []
    pages = 0
    url: str | None = "/v2/_catalog" + (f"?n={n}" if n else "")
    with httpx.Client(base_url=registry.url, headers={"Authorization": f"Bearer {token}"}) as client:
        while url:
            response = client.get(url)
            assert response.status_code == 200, response.text
            page = response.json()["repositories"]
            assert page, "a Link led to an empty page"
            if n:
                assert len(page) <= n
            names += page
            pages += 1
            link = response.headers.get("link")
            url = link[1 : link.index(">")] if link else None
    return names, pages


@pytest.mark.parametrize("user", ["alice", "bob"])
@pytest.mark.parametrize("n", [None, 1, 2, 3])
def test_each_account_sees_what_it_may_pull(registry: RunningRegistry, user: str, n: int | None) -> None:
    names, pages = whole_catalog(registry, catalog_token(registry, user), n)
    assert names == SEEN[user]
    assert pages == (-(-len(SEEN[user]) // n) if n else 1)


def test_anonymous_users_are_asked_to_sign_in(registry: RunningRegistry) -> None:
    challenge = httpx.get(f"{registry.url}/v2/_catalog")
    assert challenge.status_code == 401
    assert challenge_params(challenge.headers["www-authenticate"])[1]["scope"] == "registry:catalog:*"
    anonymous = catalog_token(registry, None)
    refused = httpx.get(f"{registry.url}/v2/_catalog", headers={"Authorization": f"Bearer {anonymous}"})
    assert refused.status_code == 401
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


def test_podman_search_lists_the_signed_in_users_repositories(
    registry: RunningRegistry, fresh_container_tools: ContainerTools, tmp_path: Path
) -> None:
    def search() -> Any:
        return fresh_container_tools.podman(
            "search", "--tls-verify=false", "--format", "{{.Name}}", f"{registry.host}/", check=False
        )

    for user in ("alice", "bob"):
        fresh_container_tools.podman(
            "login", "--tls-verify=false", "-u", user, "-p", PASSWORDS[user], registry.host
        )
        found = search()
        assert found.returncode == 0, found.stderr
        assert found.stdout.split() == [f"{registry.host}/{name}" for name in SEEN[user]]
    fresh_container_tools.podman("logout", registry.host)
    anonymous = search()
    assert anonymous.returncode != 0
    assert "401" in anonymous.stderr or "unauthorized" in anonymous.stderr.lower(), anonymous.stderr


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_registry_wide_usage_lists_what_the_account_may_pull(registry: RunningRegistry, user: str) -> None:
    measured = subprocess.run(
        [sys.executable, "-m", "registry", "usage", str(registry.config_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
    )
    assert measured.returncode == 0, measured.stderr
    token = catalog_token(registry, user)
    usage = httpx.get(f"{registry.url}/v2/_dockyard/usage", headers={"Authorization": f"Bearer {token}"})
    assert usage.status_code == 200, usage.text
    assert [entry["name"] for entry in usage.json()["repositories"]] == SEEN[user]
