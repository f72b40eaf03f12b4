"""Registries for the web interface's tests, filled by stock clients, and the browser.

- ``open_registry``: no access control, deletes enabled. Holds ``team/app:1.0`` built and pushed
  by buildah (entrypoint, command, environment, ports, labels carrying script, HTML, very long
  and non-ASCII text), a signature-like referrer of it, ``team/multi:latest`` (a three-platform
  index) and ``team/layers:v1`` (eight layers), both copied in by skopeo.
- ``htpasswd_ui_registry``: Basic auth (every user may do everything), ``alice/app:1.0``.
- ``token_ui_registry``: the built-in token server; alice owns ``alice/*``, bob owns ``bob/*``,
  everyone may pull ``public/*``, signed-in users may push there too but delete nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from auth.keygen import GeneratedKey, generate_token_key
from tests.auth.helpers import ISSUER, SERVICE, write_htpasswd
from tests.auth.registries import AuthedClient
from tests.support.containers import ContainerTools
from tests.support.images import Blob, artifact, multi_arch_index, random_image, write_oci_layout
from tests.support.pushing import push_content
from tests.support.registry import RunningRegistry, StartRegistry

from .browser import Browser, chromium

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2"}
SCRIPT_LABEL = '<script>alert("label")</script>'
HTML_LABEL = '<img src=x onerror=alert(1)><b>bold</b>"quoted"'
LONG_LABEL = "long-" + "x" * 5000
UNICODE_LABEL = "Größe ✓ 日本語 😀 \u202eevil"
DESCRIPTION = "The team's <app>, described"
SIGNATURE_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
TOKEN_ACL: list[dict[str, Any]] = [
    {"account": "*", "repository": "${account}/*", "actions": ["*"]},
    {"account": "*", "repository": "public/*", "actions": ["pull", "push"]},
    {"everyone": True, "repository": "public/*", "actions": ["pull"]},
]


@dataclass
class Filled:
    """A registry and what the clients pushed to it."""

    registry: RunningRegistry
    app_digest: str = ""
    signature_digest: str = ""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with chromium() as started:
        yield started


@pytest.fixture(scope="session")
def open_registry(
    start_registry: StartRegistry,
    container_tools: ContainerTools,
    tmp_path_factory: pytest.TempPathFactory,
) -> Filled:
    registry = start_registry()
    host = registry.host
    container_tools.build_scratch_image(
        "localhost/ui-app:1.0",
        [{"bin/app": os.urandom(2048)}, {"etc/app.conf": b"setting = 1\n"}],
        config={
            "--entrypoint": '["/bin/app", "--serve"]',
            "--cmd": "--port 8080",
            "--env": "MODE=production",
            "--port": "8080/tcp",
            "--label": f"org.opencontainers.image.description={DESCRIPTION}",
        },
    )
    _add_labels(container_tools, "localhost/ui-app:1.0")
    container_tools.buildah(
        "push", "--format", "oci", "localhost/ui-app:1.0", f"docker://{host}/team/app:1.0"
    )
    layout = tmp_path_factory.mktemp("ui-layout")
    write_oci_layout(layout, {"multi": multi_arch_index(layers=1), "layers": random_image(8, 8 * 1024)})
    container_tools.skopeo("copy", "--all", f"oci:{layout}:multi", f"docker://{host}/team/multi:latest")
    container_tools.skopeo("copy", f"oci:{layout}:layers", f"docker://{host}/team/layers:v1")
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        app = client.get(
            "/v2/team/app/manifests/1.0", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        app_digest = app.headers["Docker-Content-Digest"]
        subject = Blob(app.headers["Content-Type"], app.content)
        signature = artifact(subject, SIGNATURE_TYPE, {"note": SCRIPT_LABEL})
        push_content(client, "team/app", signature.digest, signature)
    return Filled(registry, app_digest, signature.digest)


def _add_labels(tools: ContainerTools, image: str) -> None:
    """Labels no client would write on purpose, one ``buildah config`` each."""
    container = tools.buildah("from", image).stdout.strip()
    for key, value in (("evil.script", SCRIPT_LABEL), ("evil.html", HTML_LABEL),
                       ("long", LONG_LABEL), ("unicode", UNICODE_LABEL)):  # fmt: skip
        tools.buildah("config", "--label", f"{key}={value}", container)
    tools.buildah("commit", "--rm", "--quiet", container, image)


@pytest.fixture(scope="session")
def htpasswd_ui_registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> RunningRegistry:
    htpasswd = write_htpasswd(tmp_path_factory.mktemp("ui-htpasswd") / "htpasswd", PASSWORDS)
    registry = start_registry(config={"auth": {"htpasswd": {"realm": "Dockyard", "path": str(htpasswd)}}})
    alice = _basic(registry, "alice")
    assert alice.push_image("alice/app", "1.0", random_image(1, 4096)).status_code == 201
    return registry


def _basic(registry: RunningRegistry, user: str) -> AuthedClient:
    credentials = httpx.BasicAuth(user, PASSWORDS[user])
    header = next(credentials.auth_flow(httpx.Request("GET", registry.url))).headers["Authorization"]
    return AuthedClient(registry.url, {"Authorization": header})


@pytest.fixture(scope="session")
def ui_token_key(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKey:
    return generate_token_key(tmp_path_factory.mktemp("ui-token-key"), "ES256")


@pytest.fixture(scope="session")
def token_ui_registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory, ui_token_key: GeneratedKey
) -> RunningRegistry:
    htpasswd = write_htpasswd(tmp_path_factory.mktemp("ui-token") / "htpasswd", PASSWORDS)
    token = {
        "realm": "http://127.0.0.1:9/auth/token",  # replaced below, once the port is known
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(ui_token_key.certificate_path),
    }
    server = {
        "issuer": ISSUER,
        "service": SERVICE,
        "signingkey": str(ui_token_key.key_path),
        "certificate": str(ui_token_key.certificate_path),
        "htpasswd": str(htpasswd),
        "acl": TOKEN_ACL,
    }
    registry = start_registry(config={"auth": {"token": token}, "tokenserver": server})
    registry.config["auth"]["token"]["realm"] = f"{registry.url}/auth/token"
    registry.restart()
    for user, repository in (("alice", "alice/app"), ("bob", "bob/tool"), ("bob", "public/site")):
        pushed = token_client(registry, user, repository).push_image(repository, "1.0", random_image(1, 4096))
        assert pushed.status_code == 201, pushed.text
    return registry


def token_client(registry: RunningRegistry, user: str, repository: str) -> AuthedClient:
    """A client with a token for pull and push on ``repository``, from the registry's realm."""
    response = httpx.get(
        f"{registry.url}/auth/token",
        params={"service": SERVICE, "scope": f"repository:{repository}:pull,push"},
        auth=(user, PASSWORDS[user]),
        timeout=10,
    )
    response.raise_for_status()
    return AuthedClient(registry.url, {"Authorization": f"Bearer {response.json()['token']}"})


def ui_path(registry: RunningRegistry, path: str = "/") -> str:
    return f"{registry.url}/ui{path}"
