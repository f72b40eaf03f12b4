"""Registry-side token verification: the negative matrix, positive cases, challenge format."""

from __future__ import annotations

import base64
import datetime
import functools
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from auth import AuthConfigError, Challenge, create_access_controller
from auth.base import Access
from auth.keygen import GeneratedKey
from auth.keys import jwk_thumbprint, libtrust_key_id
from auth.token import TokenAccessController

from .helpers import ISSUER, REALM, SERVICE, b64url, challenge_params, claims, forge, repo_access

PULL = Access("repository", "team/app", "pull")
PUSH = Access("repository", "team/app", "push")
DELETE = Access("repository", "team/app", "delete")


def private_key(generated: GeneratedKey) -> Any:
    return serialization.load_pem_private_key(generated.key_path.read_bytes(), None)


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def sign_es256(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    def sign(data: bytes) -> bytes:
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def token_for(generated: GeneratedKey, body: dict[str, Any], **header: Any) -> str:
    """A properly signed ES256 token with kid = libtrust id (plus any header overrides)."""
    headers = {"kid": generated.key_id, **header}
    return jwt.encode(body, private_key(generated), algorithm="ES256", headers=headers)


def controller_for(*bundle: GeneratedKey, **extra: Any) -> TokenAccessController:
    bundle_path = bundle[0].certificate_path.parent / "bundle.pem"
    bundle_path.write_bytes(b"".join(key.certificate_path.read_bytes() for key in bundle))
    settings = {"realm": REALM, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(bundle_path)}
    built = create_access_controller({"token": {**settings, **extra}})
    assert isinstance(built, TokenAccessController)
    return built


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def refused(controller: TokenAccessController, token: str, required: list[Access]) -> dict[str, str]:
    with pytest.raises(Challenge) as raised:
        await controller.authorize(bearer(token), required)
    scheme, params = challenge_params(raised.value.www_authenticate)
    assert scheme == "Bearer"
    assert params["realm"] == REALM
    assert params["service"] == SERVICE
    return params


@pytest.fixture(scope="module")
def trusted(es256_key: GeneratedKey) -> TokenAccessController:
    return controller_for(es256_key)


# ---- the negative matrix: every row must be refused -------------------------------------------


async def test_alg_none_is_refused(trusted: TokenAccessController, es256_key: GeneratedKey) -> None:
    token = forge(
        {"alg": "none", "typ": "JWT", "kid": es256_key.key_id},
        claims([repo_access("team/app", "pull")]),
        lambda _: b"",
    )
    assert (await refused(trusted, token, [PULL]))["error"] == "invalid_token"


@pytest.mark.parametrize("algorithms", [None, ["HS256", "ES256"]], ids=["default", "hs256-enabled"])
async def test_hs256_keyed_with_the_public_key_is_refused(
    es256_key: GeneratedKey, algorithms: list[str] | None
) -> None:
    """The classic confusion: the attacker MACs with the (public) certificate or key bytes."""
    extra = {"signingalgorithms": algorithms} if algorithms else {}
    controller = controller_for(es256_key, **extra)
    public_pem = (
        private_key(es256_key)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for secret in (public_pem, es256_key.certificate_path.read_bytes()):
        token = forge(
            {"alg": "HS256", "typ": "JWT", "kid": es256_key.key_id},
            claims([repo_access("team/app", "pull")]),
            functools.partial(hmac.digest, secret, digest="sha256"),
        )
        assert (await refused(controller, token, [PULL]))["error"] == "invalid_token"


async def test_foreign_jwk_header_with_a_trusted_kid_is_refused(
    trusted: TokenAccessController, es256_key: GeneratedKey, attacker_key: GeneratedKey
) -> None:
    attacker = private_key(attacker_key)
    attacker_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    body = claims([repo_access("team/app", "pull", "push", "delete")])
    for header in (
        {"kid": es256_key.key_id, "jwk": attacker_jwk},  # trusted name, attacker's key inline
        {"jwk": attacker_jwk},  # no kid at all
        {"jwk": {**attacker_jwk, "kid": es256_key.key_id}},
    ):
        token = forge({"alg": "ES256", "typ": "JWT", **header}, body, sign_es256(attacker))
        assert (await refused(trusted, token, [PULL]))["error"] == "invalid_token"


async def test_keys_from_urls_or_untrusted_chains_are_never_used(
    trusted: TokenAccessController, attacker_key: GeneratedKey
) -> None:
    attacker = private_key(attacker_key)
    body = claims([repo_access("team/app", "pull")])
    for header in (
        {"jku": "http://127.0.0.1:9/jwks.json"},
        {"x5u": "http://127.0.0.1:9/cert.pem"},
        {"x5c": [base64.b64encode(_der(attacker_key.certificate_path.read_bytes())).decode()]},
        {"kid": attacker_key.key_id},
    ):
        token = forge({"alg": "ES256", "typ": "JWT", **header}, body, sign_es256(attacker))
        assert (await refused(trusted, token, [PULL]))["error"] == "invalid_token"


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"aud": "another-registry"},
        {"aud": ["another-registry", "a-third"]},
        {"exp": int(time.time()) - 120},  # expired beyond the 60 s leeway
        {"nbf": int(time.time()) + 300},  # not valid yet
        {"iat": int(time.time()) + 300},  # issued in the future
        {"exp": None},  # removed below
        {"iss": None},
        {"aud": None},
        {"exp": "tomorrow"},
    ],
    ids=[
        "wrong-issuer",
        "wrong-audience",
        "wrong-audience-list",
        "expired",
        "not-yet-valid",
        "issued-in-future",
        "missing-exp",
        "missing-iss",
        "missing-aud",
        "exp-not-a-number",
    ],
)
async def test_claims_that_do_not_fit_are_refused(
    trusted: TokenAccessController, es256_key: GeneratedKey, overrides: dict[str, Any]
) -> None:
    body = claims([repo_access("team/app", "pull")])
    for key, value in overrides.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    assert (await refused(trusted, token_for(es256_key, body), [PULL]))["error"] == "invalid_token"


async def test_token_for_another_repository_is_insufficient(
    trusted: TokenAccessController, es256_key: GeneratedKey
) -> None:
    token = token_for(es256_key, claims([repo_access("team/other", "pull", "push")]))
    params = await refused(trusted, token, [PULL])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "repository:team/app:pull"


async def test_push_only_token_cannot_delete(trusted: TokenAccessController, es256_key: GeneratedKey) -> None:
    token = token_for(es256_key, claims([repo_access("team/app", "push")]))
    assert (await trusted.authorize(bearer(token), [PUSH])).account == "alice"
    params = await refused(trusted, token, [DELETE])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "repository:team/app:delete"


async def test_tampered_token_is_refused(trusted: TokenAccessController, es256_key: GeneratedKey) -> None:
    token = token_for(es256_key, claims([repo_access("team/app", "pull")]))
    header, _, signature = token.split(".")
    widened = claims([repo_access("team/app", "pull", "push", "delete")])
    tampered_claims = f"{header}.{b64url(json.dumps(widened).encode())}.{signature}"
    assert (await refused(trusted, tampered_claims, [DELETE]))["error"] == "invalid_token"
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert (await refused(trusted, f"{header}.{token.split('.')[1]}.{flipped}", [PULL]))[
        "error"
    ] == "invalid_token"


async def test_our_refresh_token_is_not_an_access_token(
    trusted: TokenAccessController, es256_key: GeneratedKey
) -> None:
    token = token_for(es256_key, claims([repo_access("team/app", "pull")]), typ="dockyard-refresh+jwt")
    assert (await refused(trusted, token, [PULL]))["error"] == "invalid_token"


@pytest.mark.parametrize(
    "access",
    [
        "not-a-list",
        [{"type": "repository", "name": "team/app", "actions": "pull"}],
        [{"type": "repository", "actions": ["pull"]}],
        ["repository:team/app:pull"],
    ],
)
async def test_malformed_access_claims_are_refused(
    trusted: TokenAccessController, es256_key: GeneratedKey, access: Any
) -> None:
    token = token_for(es256_key, claims(access=access))
    assert (await refused(trusted, token, [PULL]))["error"] == "invalid_token"


async def test_no_token_gets_a_plain_challenge_with_the_needed_scope(trusted: TokenAccessController) -> None:
    with pytest.raises(Challenge) as raised:
        await trusted.authorize({}, [PULL, PUSH, Access("repository", "team/base", "pull")])
    _scheme, params = challenge_params(raised.value.www_authenticate)
    assert raised.value.www_authenticate == (
        f'Bearer realm="{REALM}",service="{SERVICE}",'
        'scope="repository:team/app:pull,push repository:team/base:pull"'
    )
    assert "error" not in params
    assert raised.value.detail == [
        {"Type": "repository", "Name": "team/app", "Action": "pull"},
        {"Type": "repository", "Name": "team/app", "Action": "push"},
        {"Type": "repository", "Name": "team/base", "Action": "pull"},
    ]


async def test_base_endpoint_without_token_has_no_scope(trusted: TokenAccessController) -> None:
    with pytest.raises(Challenge) as raised:
        await trusted.authorize({}, [])
    assert raised.value.www_authenticate == f'Bearer realm="{REALM}",service="{SERVICE}"'


# ---- tokens that must be accepted ----------------------------------------------------------------


async def test_kid_as_libtrust_id_or_thumbprint(
    trusted: TokenAccessController, es256_key: GeneratedKey
) -> None:
    public = private_key(es256_key).public_key()
    for kid in (libtrust_key_id(public), jwk_thumbprint(public)):
        token = token_for(es256_key, claims([repo_access("team/app", "pull")]), kid=kid)
        grant = await trusted.authorize(bearer(token), [PULL])
        assert grant.account == "alice"
        assert grant.accesses == {PULL}


async def test_x5c_chaining_to_the_bundle_needs_no_kid(
    trusted: TokenAccessController, es256_key: GeneratedKey
) -> None:
    body = claims([repo_access("team/app", "pull")])
    chain = [base64.b64encode(_der(es256_key.certificate_path.read_bytes())).decode()]
    token = jwt.encode(body, private_key(es256_key), algorithm="ES256", headers={"x5c": chain})
    assert (await trusted.authorize(bearer(token), [PULL])).account == "alice"


async def test_x5c_leaf_issued_by_a_trusted_root(tmp_path: Path, es256_key: GeneratedKey) -> None:
    """A token server whose certificate is signed by the CA in the bundle (not in the bundle)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token server")]))
        .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    controller = create_access_controller(
        {"token": {"realm": REALM, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(bundle)}}
    )
    chain = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
    body = claims([repo_access("team/app", "pull")])
    token = jwt.encode(body, leaf_key, algorithm="ES256", headers={"x5c": chain, "kid": "unknown"})
    assert (await controller.authorize(bearer(token), [PULL])).account == "alice"
    # The same chain signed by a different key than the leaf's is refused.
    forged = jwt.encode(
        body, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"x5c": chain}
    )
    with pytest.raises(Challenge):
        await controller.authorize(bearer(forged), [PULL])


async def test_wildcard_action_and_catalog_scope(
    trusted: TokenAccessController, es256_key: GeneratedKey
) -> None:
    catalog = Access("registry", "catalog", "*")
    token = token_for(
        es256_key,
        claims([repo_access("team/app", "*"), {"type": "registry", "name": "catalog", "actions": ["*"]}]),
    )
    grant = await trusted.authorize(bearer(token), [PULL, PUSH, DELETE, catalog])
    assert grant.accesses == {PULL, PUSH, DELETE, catalog}
    pull_only = token_for(es256_key, claims([{"type": "registry", "name": "catalog", "actions": ["pull"]}]))
    assert (await refused(trusted, pull_only, [catalog]))["error"] == "insufficient_scope"


async def test_audience_list_anonymous_subject_and_leeway(
    trusted: TokenAccessController, es256_key: GeneratedKey
) -> None:
    body = claims([repo_access("team/app", "pull")], aud=["other", SERVICE], sub="")
    body["exp"] = int(time.time()) - 30  # within the leeway
    grant = await trusted.authorize(bearer(token_for(es256_key, body)), [PULL])
    assert grant.account is None


async def test_rs256_key_from_a_jwks_file(tmp_path: Path, rs256_key: GeneratedKey) -> None:
    key = private_key(rs256_key)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "signer-2026", "alg": "RS256"}]}))
    controller = create_access_controller(
        {"token": {"realm": REALM, "service": SERVICE, "issuer": ISSUER, "jwks": str(jwks)}}
    )
    body = claims([repo_access("team/app", "pull")])
    token = jwt.encode(body, key, algorithm="RS256", headers={"kid": "signer-2026"})
    assert (await controller.authorize(bearer(token), [PULL])).account == "alice"
    ps256 = jwt.encode(body, key, algorithm="PS256", headers={"kid": "signer-2026"})
    with pytest.raises(Challenge):  # the JWKS entry pins RS256
        await controller.authorize(bearer(ps256), [PULL])


async def test_configured_algorithms_are_pinned(es256_key: GeneratedKey) -> None:
    controller = controller_for(es256_key, signingalgorithms=["RS256"])
    token = token_for(es256_key, claims([repo_access("team/app", "pull")]))
    assert (await refused(controller, token, [PULL]))["error"] == "invalid_token"


async def test_verified_token_is_reused_but_still_expires(
    trusted: TokenAccessController, es256_key: GeneratedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(es256_key, claims([repo_access("team/app", "pull")], lifetime=100))
    verifications = 0
    real = trusted.verifier.verify

    def counting(raw: str) -> Any:
        nonlocal verifications
        verifications += 1
        return real(raw)

    monkeypatch.setattr(trusted.verifier, "verify", counting)
    for _ in range(3):
        await trusted.authorize(bearer(token), [PULL])
    assert verifications == 1
    later = time.time() + 100 + 61  # past exp and leeway: the remembered result is not used
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Challenge):  # verified again, against the same clock: expired
        await trusted.authorize(bearer(token), [PULL])
    assert verifications == 2


async def test_autoredirect_realm_follows_the_host(es256_key: GeneratedKey) -> None:
    controller = controller_for(es256_key, autoredirect=True)
    with pytest.raises(Challenge) as raised:
        await controller.authorize({"host": "registry.example:5000", "x-forwarded-proto": "http"}, [PULL])
    assert (
        challenge_params(raised.value.www_authenticate)[1]["realm"]
        == "http://registry.example:5000/auth/token"
    )
    with pytest.raises(Challenge) as raised:
        await controller.authorize({"host": "registry.example"}, [PULL])
    assert (
        challenge_params(raised.value.www_authenticate)[1]["realm"] == "https://registry.example/auth/token"
    )


def test_config_problems_are_all_listed(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError) as raised:
        create_access_controller(
            {
                "token": {
                    "realm": REALM,
                    "signingalgorithms": ["none", "ES256"],
                    "jwks": str(tmp_path / "nope"),
                    "autoredirectpath": "auth/token",
                }
            }
        )
    text = "\n".join(raised.value.problems)
    for expected in (
        "auth.token.service: required",
        "auth.token.issuer: required",
        "'none'",
        "nope: no such file",
        "auth.token.autoredirectpath: must start with /",
    ):
        assert expected in text
