"""Token auth behind the proxy: the built-in token server is reached through nginx, and the
challenge's realm names the proxy as the client reached it (``autoredirect``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.dockerd import Dockerd
from tests.support.images import busybox_rootfs_tar
from tests.support.nginx import HTTP_SITE, TLS_SITE, Nginx
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.tls import ServerCertificates

from .conftest import REGISTRY_NAME, trusting
from .shipped import dockyard_binary

pytestmark = [pytest.mark.nginx, pytest.mark.clients, pytest.mark.slow]

PASSWORD = "proxy-" + os.urandom(6).hex()
TOKEN_PATH = "/auth/token"


def token_auth(workdir: Path) -> dict[str, object]:
    """The built-in token server, its realm redirected to the host each client reached
    (``autoredirect``); alice owns alice/*."""
    keys = workdir / "token"
    htpasswd = workdir / "htpasswd"
    subprocess.run([dockyard_binary(), "generate-token-key", str(keys)], check=True, capture_output=True)
    subprocess.run(
        [dockyard_binary(), "htpasswd", "--password-stdin", str(htpasswd), "alice"],
        input=PASSWORD, text=True, check=True, capture_output=True,
    )  # fmt: skip
    names = {"issuer": "dockyard", "service": REGISTRY_NAME}
    return {
        "auth": {
            "token": {
                **names,
                "realm": f"https://{REGISTRY_NAME}{TOKEN_PATH}",
                "rootcertbundle": str(keys / "token.crt"),
                "autoredirect": True,
                "autoredirectpath": TOKEN_PATH,
            }
        },
        "tokenserver": {
            **names,
            "path": TOKEN_PATH,
            "signingkey": str(keys / "token.key"),
            "certificate": str(keys / "token.crt"),
            "htpasswd": str(htpasswd),
            "acl": [{"account": "*", "repository": "${account}/*", "actions": ["*"]}],
        },
    }


@pytest.fixture(scope="session")
def token_registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> RunningRegistry:
    return start_registry(token_auth(tmp_path_factory.mktemp("token-auth")))


@pytest.fixture(scope="session", params=["tls", "http"])
def token_proxy(
    request: pytest.FixtureRequest,
    start_nginx: Callable[..., Nginx],
    token_registry: RunningRegistry,
    certificates: ServerCertificates,
) -> Nginx:
    if request.param == "tls":
        return start_nginx(TLS_SITE, token_registry.host, certificates)
    return start_nginx(HTTP_SITE, token_registry.host)


def test_challenge_realm_names_the_proxy(token_proxy: Nginx, certificates: ServerCertificates) -> None:
    verify = trusting(certificates) if token_proxy.tls else True
    with httpx.Client(base_url=token_proxy.url, verify=verify) as client:
        for headers in ({}, {"X-Forwarded-Proto": "http" if token_proxy.tls else "https"}):
            challenge = client.get("/v2/", headers=headers)
            assert challenge.status_code == 401
            assert f'realm="{token_proxy.url}{TOKEN_PATH}"' in challenge.headers["www-authenticate"]
        token = client.get(TOKEN_PATH, params={"service": REGISTRY_NAME}, auth=("alice", PASSWORD))
        assert token.status_code == 200, token.text
        ping = client.get("/v2/", headers={"Authorization": f"Bearer {token.json()['token']}"})
        assert ping.status_code == 200


def test_a_forwarded_scheme_from_a_peer_that_is_no_proxy_is_ignored(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """The client reaches the registry directly; only 127.0.0.2 is a trusted proxy."""
    registry = start_registry({**token_auth(tmp_path), "http": {"trustedproxies": ["127.0.0.2"]}}, workers=1)
    with httpx.Client(base_url=registry.url) as client:
        for forged in ("http", "https"):
            challenge = client.get("/v2/", headers={"Host": "registry.test", "X-Forwarded-Proto": forged})
            assert challenge.status_code == 401
            assert f'realm="https://registry.test{TOKEN_PATH}"' in challenge.headers["www-authenticate"]


def test_docker_login_push_pull_with_tokens(
    token_proxy: Nginx,
    dockerd: Dockerd,
    certificates: ServerCertificates,
    tmp_path: Path,
) -> None:
    host = f"{REGISTRY_NAME}:{token_proxy.port}" if token_proxy.tls else token_proxy.host
    if token_proxy.tls:
        dockerd.trust(host, certificates.ca_cert)
    nonce = os.urandom(4).hex()
    own, foreign = f"{host}/alice/app-{nonce}:1", f"{host}/bob/app-{nonce}:1"
    rootfs = busybox_rootfs_tar(tmp_path / "rootfs.tar", {"etc/nonce": os.urandom(64 * 1024)})
    dockerd.docker("import", str(rootfs), own)
    dockerd.docker("tag", own, foreign)

    wrong = dockerd.docker("login", "--username", "alice", "--password", "wrong", host, check=False)
    assert wrong.returncode != 0
    login = dockerd.docker("login", "--username", "alice", "--password", PASSWORD, host)
    assert "Login Succeeded" in login.stdout
    dockerd.docker("push", own)
    refused = dockerd.docker("push", foreign, check=False)
    assert refused.returncode != 0

    dockerd.docker("logout", host)
    dockerd.docker("rmi", own)
    anonymous = dockerd.docker("pull", own, check=False)
    assert anonymous.returncode != 0
    dockerd.docker("login", "--username", "alice", "--password", PASSWORD, host)
    dockerd.docker("pull", own)
    dockerd.docker("logout", host)
