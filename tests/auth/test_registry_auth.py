"""Authentication on the running registry (``dockyard serve``): htpasswd and token modes over
real sockets, per-repository permissions, no existence leaks, no route that escapes the check."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.images import random_image
from tests.support.registry import RunningRegistry, StartRegistry

from .helpers import SERVICE, challenge_params
from .registries import (
    AuthedClient,
    basic_client,
    bearer_client,
    comparable,
    fetch_token,
    htpasswd_registry,
    token_registry,
)
from .servers import TokenServerProcess, start_token_server


@pytest.fixture(scope="module")
def basic_registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> RunningRegistry:
    return htpasswd_registry(start_registry, tmp_path_factory.mktemp("htpasswd-registry"))


@pytest.fixture(scope="module")
def module_token_server(
    tmp_path_factory: pytest.TempPathFactory, es256_key: object
) -> Iterator[TokenServerProcess]:
    server = start_token_server(tmp_path_factory.mktemp("registry-token-server"), es256_key)  # type: ignore[arg-type]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bearer_registry(
    start_registry: StartRegistry, module_token_server: TokenServerProcess
) -> RunningRegistry:
    return token_registry(start_registry, module_token_server)


def anonymous(registry: RunningRegistry) -> AuthedClient:
    return AuthedClient(registry.url)


# ---- htpasswd --------------------------------------------------------------------------------


def test_basic_challenge_and_login(basic_registry: RunningRegistry) -> None:
    refused = anonymous(basic_registry).request("GET", "/v2/")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="Dockyard"'
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert basic_client(basic_registry, "alice").request("GET", "/v2/").status_code == 200
    wrong = AuthedClient(basic_registry.url, {"Authorization": "Basic YWxpY2U6bm9wZQ=="})  # alice:nope
    assert wrong.request("GET", "/v2/").status_code == 401


def test_basic_user_pushes_and_pulls(basic_registry: RunningRegistry) -> None:
    alice = basic_client(basic_registry, "alice")
    image = random_image(layers=1, layer_size=4096)
    assert alice.push_image("team/app", "v1", image).status_code == 201
    pulled = alice.request("GET", "/v2/team/app/manifests/v1", headers={"Accept": image.manifest.media_type})
    assert pulled.status_code == 200
    assert pulled.content == image.manifest.data
    assert anonymous(basic_registry).request("GET", "/v2/team/app/manifests/v1").status_code == 401


def test_basic_existing_and_missing_repositories_look_the_same(basic_registry: RunningRegistry) -> None:
    alice = basic_client(basic_registry, "alice")
    assert (
        alice.push_image("private/exists", "v1", random_image(layers=1, layer_size=1024)).status_code == 201
    )
    existing = anonymous(basic_registry).request("GET", "/v2/private/exists/manifests/v1")
    missing = anonymous(basic_registry).request("GET", "/v2/private/absent/manifests/v1")
    assert comparable(existing, "private/exists") == comparable(missing, "private/absent")
    assert existing.status_code == 401


# ---- token auth with the built-in token server ----------------------------------------------


def test_bearer_challenge_names_token_server_and_scope(
    bearer_registry: RunningRegistry, module_token_server: TokenServerProcess
) -> None:
    response = anonymous(bearer_registry).request("HEAD", "/v2/alice/app/manifests/v1")
    assert response.status_code == 401
    scheme, params = challenge_params(response.headers["www-authenticate"])
    assert scheme == "Bearer"
    assert params == {
        "realm": module_token_server.url,
        "service": SERVICE,
        "scope": "repository:alice/app:pull",
    }
    push = anonymous(bearer_registry).request("POST", "/v2/alice/app/blobs/uploads/")
    assert challenge_params(push.headers["www-authenticate"])[1]["scope"] == "repository:alice/app:pull,push"


def test_owner_pushes_others_pull_only_where_allowed(
    bearer_registry: RunningRegistry, module_token_server: TokenServerProcess
) -> None:
    alice = bearer_client(
        bearer_registry, fetch_token(module_token_server, "alice", "repository:alice/app:pull,push")
    )
    image = random_image(layers=1, layer_size=4096)
    assert alice.push_image("alice/app", "v1", image).status_code == 201

    reader = bearer_client(
        bearer_registry, fetch_token(module_token_server, "reader", "repository:alice/app:pull,push,delete")
    )
    pulled = reader.request(
        "GET", "/v2/alice/app/manifests/v1", headers={"Accept": image.manifest.media_type}
    )
    assert pulled.status_code == 200
    assert pulled.content == image.manifest.data
    push = reader.push_blob("alice/app", b"reader tries to write")
    assert push.status_code == 401
    assert 'error="insufficient_scope"' in push.headers["www-authenticate"]
    delete = reader.request("DELETE", f"/v2/alice/app/manifests/{image.digest}")
    assert delete.status_code == 401
    assert reader.request("GET", "/v2/alice/app/manifests/v1").status_code == 200  # still there

    bob = bearer_client(
        bearer_registry, fetch_token(module_token_server, "bob", "repository:alice/app:pull,push")
    )
    assert bob.push_blob("alice/app", b"bob writes into alice's namespace").status_code == 401
    assert bob.request("GET", "/v2/alice/app/manifests/v1").status_code == 401


def test_anonymous_pull_only_where_configured(
    bearer_registry: RunningRegistry, module_token_server: TokenServerProcess
) -> None:
    alice = bearer_client(
        bearer_registry, fetch_token(module_token_server, "alice", "repository:public/tool:push,pull")
    )
    image = random_image(layers=1, layer_size=2048)
    assert alice.push_image("public/tool", "v1", image).status_code == 201
    guest = bearer_client(
        bearer_registry,
        fetch_token(
            module_token_server, None, "repository:public/tool:pull,push", "repository:alice/app:pull"
        ),
    )
    assert (
        guest.request(
            "GET", "/v2/public/tool/manifests/v1", headers={"Accept": image.manifest.media_type}
        ).status_code
        == 200
    )
    assert guest.push_blob("public/tool", b"anonymous write").status_code == 401
    assert guest.request("GET", "/v2/alice/app/tags/list").status_code == 401


def test_token_mode_existing_and_missing_repositories_look_the_same(
    bearer_registry: RunningRegistry, module_token_server: TokenServerProcess
) -> None:
    alice = bearer_client(
        bearer_registry, fetch_token(module_token_server, "alice", "repository:alice/secret:pull,push")
    )
    assert alice.push_image("alice/secret", "v1", random_image(layers=1, layer_size=1024)).status_code == 201
    bob = bearer_client(
        bearer_registry,
        fetch_token(
            module_token_server, "bob", "repository:alice/secret:pull", "repository:alice/absent:pull"
        ),
    )
    for client in (anonymous(bearer_registry), bob):
        for path in ("/v2/{}/manifests/v1", "/v2/{}/tags/list", "/v2/{}/blobs/sha256:" + "0" * 64):
            existing = client.request("GET", path.format("alice/secret"))
            missing = client.request("GET", path.format("alice/absent"))
            assert existing.status_code == 401
            assert comparable(existing, "alice/secret") == comparable(missing, "alice/absent")


def test_mount_without_pull_on_the_source_is_a_fresh_upload(
    bearer_registry: RunningRegistry, module_token_server: TokenServerProcess
) -> None:
    alice = bearer_client(
        bearer_registry, fetch_token(module_token_server, "alice", "repository:alice/base:pull,push")
    )
    data = b"a layer only alice may read"
    pushed = alice.push_blob("alice/base", data)
    assert pushed.status_code == 201
    digest = pushed.headers["docker-content-digest"]
    bob = bearer_client(
        bearer_registry,
        fetch_token(module_token_server, "bob", "repository:bob/app:pull,push", "repository:alice/base:pull"),
    )
    mount = bob.request("POST", f"/v2/bob/app/blobs/uploads/?mount={digest}&from=alice/base")
    assert mount.status_code == 202  # not 201: no link into bob/app without pull on alice/base
    assert bob.request("HEAD", f"/v2/bob/app/blobs/{digest}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v2/_catalog",
        "/v2/_catalog/",
        "//v2//_catalog",
        "/v2/%5Fcatalog",
        "/v2/%5fcatalog/",
        "/%76%32/_catalog",
    ],
)
def test_catalog_spellings_get_the_same_decision(
    bearer_registry: RunningRegistry, module_token_server: TokenServerProcess, path: str
) -> None:
    bob = bearer_client(bearer_registry, fetch_token(module_token_server, "bob", "registry:catalog:*"))
    response = httpx.request("GET", httpx.URL(bearer_registry.url + path), headers=bob.headers, timeout=10)
    assert response.status_code == 401, (path, response.status_code, response.text)
    assert "repositories" not in response.text
    alice = bearer_client(bearer_registry, fetch_token(module_token_server, "alice", "registry:catalog:*"))
    assert alice.request("GET", "/v2/_catalog").status_code == 200
