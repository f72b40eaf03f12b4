"""CNCF Distribution 2.8 (Debian's docker-registry), configured with our certificate, accepts the
tokens our token server signs - and refuses them beyond the scopes they grant."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from auth.keygen import GeneratedKey, generate_token_key
from tests.support.distribution import DistributionRegistry

from .helpers import ISSUER, SERVICE, challenge_params
from .servers import PASSWORDS, TokenServerProcess, start_token_server

pytestmark = pytest.mark.interop


@pytest.fixture(
    scope="module",
    params=[("ES256", True), ("ES256", False), ("RS256", False)],
    ids=["es256-x5c-and-kid", "es256-kid-only", "rs256-kid-only"],
)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TokenServerProcess, DistributionRegistry]]:
    """Our token server and a docker-registry that trusts its certificate and nothing else.

    Without ``certificate`` the token server sends no x5c, so only a correct libtrust ``kid``
    lets Distribution find the key.
    """
    algorithm, with_certificate = request.param
    workdir = tmp_path_factory.mktemp(f"interop-{algorithm}")
    key: GeneratedKey = generate_token_key(workdir / "key", algorithm)
    extra = {} if with_certificate else {"certificate": None}
    server = start_token_server(workdir / "token-server", key, **extra)
    registry = DistributionRegistry(
        workdir / "distribution",
        workdir / "data",
        {
            "auth": {
                "token": {
                    "realm": server.url,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(key.certificate_path),
                }
            }
        },
    ).start()
    yield server, registry
    registry.stop()
    server.stop()


def token(server: TokenServerProcess, user: str | None, *scopes: str) -> str:
    auth = (user, PASSWORDS[user]) if user else None
    params = (("service", SERVICE), *(("scope", scope) for scope in scopes))
    response = httpx.get(server.url, params=params, auth=auth, timeout=10)
    response.raise_for_status()
    return str(response.json()["token"])


def push_blob(registry: DistributionRegistry, repository: str, data: bytes, bearer: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"}
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=registry.url, headers=headers, timeout=10) as client:
        started = client.post(f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            return started
        location = started.headers["location"]
        separator = "&" if "?" in location else "?"  # keep the upload state Distribution put there
        return client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )


def test_distribution_challenges_towards_our_token_server(
    pair: tuple[TokenServerProcess, DistributionRegistry],
) -> None:
    server, registry = pair
    response = httpx.get(f"{registry.url}/v2/alice/app/tags/list", timeout=10)
    assert response.status_code == 401
    scheme, params = challenge_params(response.headers["www-authenticate"])
    assert scheme == "Bearer"
    assert params == {"realm": server.url, "service": SERVICE, "scope": "repository:alice/app:pull"}


def test_distribution_accepts_our_token_to_push_and_pull(
    pair: tuple[TokenServerProcess, DistributionRegistry],
) -> None:
    server, registry = pair
    data = b"layer bytes pushed with a token from the built-in token server\n"
    bearer = token(server, "alice", "repository:alice/app:pull,push")
    pushed = push_blob(registry, "alice/app", data, bearer)
    assert pushed.status_code == 201, (pushed.status_code, pushed.text, registry.log()[-2000:])
    digest = pushed.headers["docker-content-digest"]
    pulled = httpx.get(f"{registry.url}/v2/alice/app/blobs/{digest}", timeout=10,
                       headers={"Authorization": f"Bearer {bearer}"})  # fmt: skip
    assert pulled.status_code == 200
    assert pulled.content == data

    anonymous = httpx.get(f"{registry.url}/v2/alice/app/blobs/{digest}", timeout=10)
    assert anonymous.status_code == 401


def test_distribution_refuses_what_our_token_does_not_grant(
    pair: tuple[TokenServerProcess, DistributionRegistry],
) -> None:
    server, registry = pair
    # bob asks for alice's repository: the token comes back without it.
    bob = token(server, "bob", "repository:alice/app:pull,push")
    refused = push_blob(registry, "alice/app", b"not bob's", bob)
    assert refused.status_code == 401
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    # a pull-only user cannot push, even where it may pull.
    reader = token(server, "reader", "repository:alice/app:pull,push")
    assert push_blob(registry, "alice/app", b"read only", reader).status_code == 401
    # anonymous users may pull public/* only.
    anonymous = token(server, None, "repository:public/tool:pull,push")
    assert push_blob(registry, "public/tool", b"anonymous push", anonymous).status_code == 401
