"""The built-in token server inside `dockyard serve` (at tokenserver.path): one process serves
/v2/ and the tokens for it, with the realm naming the registry itself."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from auth.keygen import GeneratedKey
from tests.support.dockerd import Dockerd
from tests.support.images import busybox_rootfs_tar, random_image
from tests.support.registry import RunningRegistry, StartRegistry

from .helpers import ISSUER, SERVICE, challenge_params, write_htpasswd
from .registries import bearer_client
from .servers import PASSWORDS, token_server_section


@pytest.fixture(scope="module")
def embedded(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory, es256_key: GeneratedKey
) -> RunningRegistry:
    htpasswd = write_htpasswd(tmp_path_factory.mktemp("embedded") / "htpasswd", PASSWORDS)
    token = {
        "realm": "http://127.0.0.1:9/auth/token",  # replaced below, once the port is known
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(es256_key.certificate_path),
    }
    registry = start_registry(
        config={"auth": {"token": token}, "tokenserver": token_server_section(es256_key, htpasswd)}
    )
    registry.config["auth"]["token"]["realm"] = f"{registry.url}/auth/token"
    return registry.restart()


def realm_token(registry: RunningRegistry, user: str, *scopes: str) -> str:
    challenge = httpx.get(f"{registry.url}/v2/", timeout=10)
    realm = challenge_params(challenge.headers["www-authenticate"])[1]["realm"]
    assert realm == f"{registry.url}/auth/token"
    query = (("service", SERVICE), *(("scope", scope) for scope in scopes))
    response = httpx.get(realm, params=query, auth=(user, PASSWORDS[user]), timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_tokens_from_the_registry_itself(embedded: RunningRegistry) -> None:
    alice = bearer_client(embedded, realm_token(embedded, "alice", "repository:alice/app:pull,push"))
    image = random_image(layers=1, layer_size=4096)
    assert alice.push_image("alice/app", "v1", image).status_code == 201
    bob = bearer_client(embedded, realm_token(embedded, "bob", "repository:alice/app:pull,push"))
    assert bob.request("GET", "/v2/alice/app/manifests/v1").status_code == 401
    form = {
        "grant_type": "password",
        "username": "bob",
        "password": PASSWORDS["bob"],
        "service": SERVICE,
        "client_id": "tests",
        "access_type": "offline",
    }
    oauth = httpx.post(f"{embedded.url}/auth/token", data=form, timeout=10)
    assert oauth.status_code == 200
    assert oauth.json()["refresh_token"]


def test_token_endpoint_is_outside_v2_and_its_errors_are_oauth_errors(embedded: RunningRegistry) -> None:
    wrong = httpx.get(
        f"{embedded.url}/auth/token", params={"service": SERVICE}, auth=("alice", "no"), timeout=10
    )
    assert wrong.status_code == 401
    assert wrong.json()["details"] == "incorrect username or password"
    missing = httpx.get(f"{embedded.url}/auth/tokens", timeout=10)
    assert missing.status_code == 404


def test_docker_login_and_push_through_the_embedded_token_server(
    embedded: RunningRegistry, dockerd: Dockerd, tmp_path: Path
) -> None:
    login = dockerd.docker(
        "login",
        "--username",
        "alice",
        "--password-stdin",
        embedded.host,
        stdin=PASSWORDS["alice"],
        check=False,
    )
    assert login.returncode == 0, login.stderr
    reference = f"{embedded.host}/alice/embedded:v1"
    rootfs = busybox_rootfs_tar(tmp_path / "rootfs.tar", {"etc/nonce": os.urandom(1024)})
    dockerd.docker("import", str(rootfs), reference)
    dockerd.docker("push", reference)
    dockerd.docker("rmi", reference)
    dockerd.docker("pull", reference)
    dockerd.docker("logout", embedded.host)
