"""The built-in token server over a real socket: GET (spec-auth-token) and POST (spec-auth-oauth)."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import jwt
import pytest

from auth import Challenge, create_access_controller
from auth.base import Access
from auth.htpasswd_edit import set_password
from auth.keygen import GeneratedKey
from auth.token import TokenAccessController

from .helpers import ISSUER, REALM, SERVICE
from .servers import PASSWORDS, TokenServerProcess


def get(
    server: TokenServerProcess, *scopes: str, auth: tuple[str, str] | None = None, **params: str
) -> httpx.Response:
    query = (("service", SERVICE), *(("scope", scope) for scope in scopes), *params.items())
    return httpx.get(server.url, params=query, auth=auth, timeout=10)


def post(server: TokenServerProcess, **form: str) -> httpx.Response:
    return httpx.post(server.url, data={"service": SERVICE, "client_id": "tests", **form}, timeout=10)


def login(user: str) -> tuple[str, str]:
    return (user, PASSWORDS[user])


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def access_of(token: str) -> dict[str, list[str]]:
    return {f"{entry['type']}:{entry['name']}": entry["actions"] for entry in claims_of(token)["access"]}


@pytest.fixture(scope="module")
def registry_side(es256_key: GeneratedKey) -> TokenAccessController:
    """What a registry configured with the generated certificate accepts."""
    controller = create_access_controller(
        {
            "token": {
                "realm": REALM,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(es256_key.certificate_path),
            }
        }
    )
    assert isinstance(controller, TokenAccessController)
    return controller


def test_get_grants_the_intersection_of_requested_and_allowed(token_server: TokenServerProcess) -> None:
    response = get(
        token_server,
        "repository:alice/app:pull,push",
        "repository:bob/app:pull repository:public/tool:push,delete",
        auth=login("alice"),
        account="alice",
        client_id="docker",
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    assert access_of(body["token"]) == {
        "repository:alice/app": ["pull", "push"],
        "repository:public/tool": ["push"],
    }
    claims = claims_of(body["token"])
    assert (claims["iss"], claims["sub"], claims["aud"]) == (ISSUER, "alice", SERVICE)
    assert claims["exp"] - claims["iat"] == 300
    assert "refresh_token" not in body


def test_token_header_names_the_key_both_ways(
    token_server: TokenServerProcess, es256_key: GeneratedKey
) -> None:
    token = get(token_server, auth=login("alice")).json()["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert header["kid"] == es256_key.key_id  # libtrust id: Distribution 2
    certificate = base64.b64decode(header["x5c"][0])  # certificate: Distribution 3
    assert b"dockyard token signer" in certificate


async def test_tokens_are_accepted_exactly_for_what_they_grant(
    token_server: TokenServerProcess, registry_side: TokenAccessController
) -> None:
    token = get(token_server, "repository:reader/x:pull,push", "repository:team/app:pull,push,delete",
                auth=login("reader")).json()["token"]  # fmt: skip
    headers = {"authorization": f"Bearer {token}"}
    grant = await registry_side.authorize(headers, [Access("repository", "team/app", "pull")])
    assert grant.account == "reader"
    for action in ("push", "delete"):
        with pytest.raises(Challenge) as raised:
            await registry_side.authorize(headers, [Access("repository", "team/app", action)])
        assert 'error="insufficient_scope"' in raised.value.www_authenticate


def test_anonymous_gets_only_anonymous_rules(token_server: TokenServerProcess) -> None:
    body = get(token_server, "repository:public/tool:pull,push", "repository:alice/app:pull",
               offline_token="true").json()  # fmt: skip
    assert access_of(body["token"]) == {"repository:public/tool": ["pull"]}
    assert claims_of(body["token"])["sub"] == ""
    assert "refresh_token" not in body  # nobody to refresh for


def test_group_members_and_namespaces(token_server: TokenServerProcess) -> None:
    builder = get(token_server, "repository:apps/web:pull,push,delete", "repository:alice/app:pull",
                  auth=login("builder")).json()  # fmt: skip
    assert access_of(builder["token"]) == {"repository:apps/web": ["pull", "push"]}
    bob = get(
        token_server, "repository:alice/app:pull,push", "repository:bob/app:push", auth=login("bob")
    ).json()
    assert access_of(bob["token"]) == {"repository:bob/app": ["push"]}


def test_catalog_scope(token_server: TokenServerProcess) -> None:
    alice = get(token_server, "registry:catalog:*", auth=login("alice")).json()
    assert access_of(alice["token"]) == {"registry:catalog": ["*"]}
    bob = get(token_server, "registry:catalog:*", auth=login("bob")).json()
    assert access_of(bob["token"]) == {}


@pytest.mark.parametrize("credentials", [("alice", "wrong-password"), ("nobody", "alice-secret-1")])
def test_wrong_credentials_are_401_with_a_message_docker_prints(
    token_server: TokenServerProcess, credentials: tuple[str, str]
) -> None:
    response = get(token_server, "repository:alice/app:pull", auth=credentials)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Basic realm="{SERVICE}"'
    assert response.json()["details"] == "incorrect username or password"
    assert credentials[1] not in response.text


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"service": "another-registry"}, 400, "invalid_request"),
        ({"scope": "repository:Bad/Name:pull"}, 400, "invalid_scope"),
        ({"account": "bob"}, 400, "invalid_request"),
    ],
)
def test_bad_get_requests(
    token_server: TokenServerProcess, params: dict[str, str], status: int, error: str
) -> None:
    response = httpx.get(
        token_server.url, params={"service": SERVICE, **params}, auth=login("alice"), timeout=10
    )
    assert response.status_code == status
    assert response.json()["error"] == error


def test_oauth_password_grant_then_refresh(token_server: TokenServerProcess) -> None:
    """What `docker login` does, then what the daemon does with the identity token on push."""
    login_response = post(token_server, grant_type="password", username="alice", password=PASSWORDS["alice"],
                          access_type="offline")  # fmt: skip
    assert login_response.status_code == 200, login_response.text
    assert login_response.headers["cache-control"] == "no-store"
    logged_in = login_response.json()
    refresh_token = logged_in["refresh_token"]
    assert logged_in["scope"] == ""
    assert access_of(logged_in["access_token"]) == {}

    refreshed = post(
        token_server,
        grant_type="refresh_token",
        refresh_token=refresh_token,
        scope="repository:alice/app:pull,push repository:bob/app:pull",
    ).json()
    assert refreshed["refresh_token"] == refresh_token  # the same one, per spec-auth-oauth
    assert refreshed["scope"] == "repository:alice/app:pull,push"
    assert refreshed["expires_in"] == 300
    assert access_of(refreshed["access_token"]) == {"repository:alice/app": ["pull", "push"]}
    assert claims_of(refreshed["access_token"])["sub"] == "alice"


def test_oauth_without_offline_gives_no_refresh_token(token_server: TokenServerProcess) -> None:
    body = post(token_server, grant_type="password", username="bob", password=PASSWORDS["bob"],
                scope="repository:bob/app:pull").json()  # fmt: skip
    assert "refresh_token" not in body
    assert body["scope"] == "repository:bob/app:pull"


def test_get_offline_token_returns_a_working_refresh_token(token_server: TokenServerProcess) -> None:
    body = get(token_server, auth=login("bob"), offline_token="true").json()
    refreshed = post(token_server, grant_type="refresh_token", refresh_token=body["refresh_token"],
                     scope="repository:bob/x:pull")  # fmt: skip
    assert refreshed.status_code == 200
    assert access_of(refreshed.json()["access_token"]) == {"repository:bob/x": ["pull"]}


def test_refresh_tokens_die_with_a_password_change(token_server: TokenServerProcess) -> None:
    body = post(token_server, grant_type="password", username="carol", password=PASSWORDS["carol"],
                access_type="offline").json()  # fmt: skip
    refresh_token = body["refresh_token"]
    assert post(token_server, grant_type="refresh_token", refresh_token=refresh_token).status_code == 200
    set_password(token_server.htpasswd, "carol", "a-new-password", cost=4)
    time.sleep(1.2)  # the file is looked at again at most once a second
    response = post(token_server, grant_type="refresh_token", refresh_token=refresh_token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_grant"
    assert (
        post(token_server, grant_type="password", username="carol", password="a-new-password").status_code
        == 200
    )


def test_access_tokens_are_not_refresh_tokens(token_server: TokenServerProcess) -> None:
    access_token = get(token_server, auth=login("alice")).json()["token"]
    for candidate in (access_token, "garbage", access_token + "x"):
        response = post(token_server, grant_type="refresh_token", refresh_token=candidate)
        assert response.status_code == 401, candidate
        assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "alice"}, 400, "invalid_request"),
        ({"grant_type": "password", "username": "alice", "password": "nope"}, 401, "invalid_grant"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
    ],
)
def test_bad_oauth_requests(
    token_server: TokenServerProcess, form: dict[str, str], status: int, error: str
) -> None:
    response = post(token_server, **form)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_post_needs_a_form_and_other_methods_are_refused(token_server: TokenServerProcess) -> None:
    as_json = httpx.post(token_server.url, json={"grant_type": "password"}, timeout=10)
    assert as_json.status_code == 400
    huge = httpx.post(token_server.url, data={"scope": "x" * 70_000}, timeout=10)
    assert huge.status_code == 413
    assert httpx.put(token_server.url, timeout=10).status_code == 405


def test_secrets_never_reach_the_log(token_server: TokenServerProcess) -> None:
    refresh_token = post(token_server, grant_type="password", username="alice", password=PASSWORDS["alice"],
                         access_type="offline").json()["refresh_token"]  # fmt: skip
    get(token_server, auth=("alice", "a-wrong-guess"))
    log = token_server.log()
    assert "token issued to alice" in log
    assert "wrong credentials for account 'alice'" in log
    for secret in (*PASSWORDS.values(), "a-wrong-guess", refresh_token, refresh_token.split(".")[2]):
        assert secret not in log
    assert json.dumps(PASSWORDS["alice"]) not in log
