"""Every malformed Authorization header and token shape, sent to the running registry: each gets a
401 challenge (``error="invalid_token"`` for a bearer token), or a 400 when the header itself breaks
HTTP; never a 500. Tokens here are signed by the trusted key, so only their shape is wrong."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from auth.keygen import GeneratedKey
from tests.badinput.rawhttp import RawResponse, raw_request
from tests.support.registry import RunningRegistry, StartRegistry

from .helpers import ISSUER, REALM, SERVICE, b64url, challenge_params, claims, repo_access
from .registries import htpasswd_registry
from .servers import PASSWORDS

PATHS = (b"/v2/", b"/v2/team/app/tags/list")
GRANT = [repo_access("team/app", "pull")]
NOW = int(time.time())
MAX_NUMERIC_DATE = 253402300799


@pytest.fixture(scope="module")
def token_registry(start_registry: StartRegistry, es256_key: GeneratedKey) -> RunningRegistry:
    token = {
        "realm": REALM,
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(es256_key.certificate_path),
    }
    return start_registry(config={"auth": {"token": token}})


@pytest.fixture(scope="module")
def basic_registry(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> RunningRegistry:
    return htpasswd_registry(start_registry, tmp_path_factory.mktemp("malformed-basic"))


@pytest.fixture(scope="module")
def sign(es256_key: GeneratedKey) -> Callable[[bytes, bytes], str]:
    """A compact JWS of exactly these header and payload bytes, signed by the trusted key."""
    key = serialization.load_pem_private_key(es256_key.key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def signed(header: bytes, payload: bytes) -> str:
        signing_input = f"{b64url(header)}.{b64url(payload)}"
        r, s = utils.decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    return signed


def _header(es256_key: GeneratedKey, **changes: Any) -> bytes:
    header = {"alg": "ES256", "typ": "JWT", "kid": es256_key.key_id, **changes}
    return json.dumps({k: v for k, v in header.items() if v is not _DROP}).encode()


_DROP = object()
"""A header or claim value that removes the key."""


def _claims(**changes: Any) -> bytes:
    body = claims(GRANT)
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not _DROP}).encode()


HEADER_CHANGES: dict[str, dict[str, Any]] = {
    "crit-unknown-extension": {"crit": ["some-extension"], "some-extension": True},
    "crit-unknown-extension-absent": {"crit": ["some-extension"]},
    "crit-empty": {"crit": []},
    "crit-not-a-list": {"crit": "exp"},
    "crit-not-strings": {"crit": [1]},
    "crit-b64": {"crit": ["b64"], "b64": False},
    "kid-number": {"kid": 1},
    "kid-list": {"kid": ["x"]},
    "kid-object": {"kid": {}},
    "kid-unknown": {"kid": "unknown"},
    "alg-none": {"alg": "none"},
    "alg-list": {"alg": ["ES256"]},
    "alg-null": {"alg": None},
    "alg-missing": {"alg": _DROP},
    "alg-hs256": {"alg": "HS256"},
    "typ-list": {"typ": ["JWT"]},
    "typ-refresh": {"typ": "refresh+jwt"},
    "x5c-string": {"kid": _DROP, "x5c": "MIIB"},
    "x5c-numbers": {"kid": _DROP, "x5c": [1, 2]},
    "x5c-not-base64": {"kid": _DROP, "x5c": ["!!!"]},
    "x5c-not-der": {"kid": _DROP, "x5c": [base64.b64encode(b"not a certificate").decode()]},
    "x5c-empty": {"kid": _DROP, "x5c": []},
    "x5c-too-long": {"kid": _DROP, "x5c": ["AAAA"] * 50},
    "jku": {"kid": _DROP, "jku": "http://127.0.0.1:9/keys"},
    "jwk-inline": {"kid": _DROP, "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}},
}

CLAIM_CHANGES: dict[str, dict[str, Any]] = {}
for _claim in ("exp", "nbf", "iat"):
    _valid = NOW + 300 if _claim == "exp" else NOW
    CLAIM_CHANGES |= {
        f"{_claim}-string": {_claim: str(_valid)},
        f"{_claim}-true": {_claim: True},
        f"{_claim}-false": {_claim: False},
        f"{_claim}-null": {_claim: None},
        f"{_claim}-list": {_claim: [_valid]},
        f"{_claim}-object": {_claim: {"seconds": _valid}},
        f"{_claim}-nan": {_claim: float("nan")},
        f"{_claim}-infinity": {_claim: float("inf")},
        f"{_claim}-minus-infinity": {_claim: float("-inf")},
        f"{_claim}-negative": {_claim: -1},
        f"{_claim}-beyond-year-9999": {_claim: MAX_NUMERIC_DATE + 1},
        f"{_claim}-400-digits": {_claim: 10**400},
    }
CLAIM_CHANGES |= {
    "exp-missing": {"exp": _DROP},
    "iss-missing": {"iss": _DROP},
    "aud-missing": {"aud": _DROP},
    "iss-list": {"iss": [ISSUER]},
    "iss-number": {"iss": 1},
    "aud-number": {"aud": 1},
    "aud-object": {"aud": {SERVICE: True}},
    "aud-list-of-numbers": {"aud": [1, 2]},
    "sub-number": {"sub": 1},
    "sub-list": {"sub": ["alice"]},
    "access-object": {"access": {"type": "repository"}},
    "access-string": {"access": "repository:team/app:pull"},
    "access-entry-string": {"access": ["repository:team/app:pull"]},
    "access-entry-list": {"access": [["repository", "team/app", ["pull"]]]},
    "access-actions-string": {"access": [{"type": "repository", "name": "team/app", "actions": "pull"}]},
    "access-actions-numbers": {"access": [{"type": "repository", "name": "team/app", "actions": [1]}]},
    "access-actions-object": {"access": [{"type": "repository", "name": "team/app", "actions": {}}]},
    "access-name-number": {"access": [{"type": "repository", "name": 1, "actions": ["pull"]}]},
    "access-type-missing": {"access": [{"name": "team/app", "actions": ["pull"]}]},
    "access-type-malformed": {"access": [{"type": "repo(", "name": "team/app", "actions": ["pull"]}]},
}

RAW_PAYLOADS: dict[str, bytes] = {
    "payload-list": b"[]",
    "payload-string": b'"claims"',
    "payload-null": b"null",
    "payload-not-json": b"{exp: 1}",
    "payload-not-utf8": b'{"exp": "\xff"}',
    "payload-duplicate-exp": _claims()[:-1] + b', "exp": "1767225600"}',
    "payload-deep": b"[" * 10_000 + b"]" * 10_000,
}

RAW_HEADERS: dict[str, bytes] = {
    "header-list": b"[]",
    "header-string": b'"ES256"',
    "header-null": b"null",
    "header-not-json": b"{alg: ES256}",
    "header-not-utf8": b'{"alg": "\xff"}',
}


UNREAD = frozenset({"over-32k"})
"""Too long to be read at all: the plain challenge of a request without a token."""


def _bearer_values(es256_key: GeneratedKey, sign: Callable[[bytes, bytes], str]) -> dict[str, str]:
    valid = sign(_header(es256_key), _claims())
    head, payload, signature = valid.split(".")
    values = {name: sign(_header(es256_key, **change), _claims()) for name, change in HEADER_CHANGES.items()}
    values |= {name: sign(_header(es256_key), _claims(**change)) for name, change in CLAIM_CHANGES.items()}
    values |= {name: sign(_header(es256_key), raw) for name, raw in RAW_PAYLOADS.items()}
    values |= {name: sign(raw, _claims()) for name, raw in RAW_HEADERS.items()}
    values |= {
        "two-segments": f"{head}.{payload}",
        "four-segments": f"{valid}.{signature}",
        "empty-segments": "..",
        "empty-signature": f"{head}.{payload}.",
        "padding-in-segment": f"{head}==.{payload}.{signature}",
        "not-base64": f"{head}.!!!.{signature}",
        "standard-base64-alphabet": f"{head}.{payload.replace('-', '+').replace('_', '/')}+/.{signature}",
        "non-ascii": f"{head}.{payload}é.{signature}",
        "over-32k": f"{head}.{'A' * 40_000}.{signature}",
        "signature-of-another-token": f"{head}.{b64url(_claims(sub='mallory'))}.{signature}",
        "quoted": f'"{valid}"',
        "with-space-inside": f"{head}. {payload}.{signature}",
        "just-a-dot": ".",
    }
    return values


def test_a_well_formed_token_is_accepted(
    token_registry: RunningRegistry, es256_key: GeneratedKey, sign: Callable[[bytes, bytes], str]
) -> None:
    """The control: what the shapes below break is the only thing wrong with them."""
    token = sign(_header(es256_key), _claims())
    for path, status in zip(PATHS, (200, 404), strict=True):  # 404: allowed, but nothing pushed
        response = raw_request(token_registry.port, "GET", path, [("Authorization", f"Bearer {token}")])
        assert response.status == status, (path, response.body[:300])


def test_every_malformed_token_is_an_invalid_token_challenge(
    token_registry: RunningRegistry, es256_key: GeneratedKey, sign: Callable[[bytes, bytes], str]
) -> None:
    wrong: dict[str, tuple[bytes, int, str]] = {}
    for name, token in _bearer_values(es256_key, sign).items():
        for path in PATHS:
            response = raw_request(token_registry.port, "GET", path, [("Authorization", f"Bearer {token}")])
            problem = _challenge_problem(response, "Bearer")
            challenge = response.headers.get("WWW-Authenticate", "")
            if problem is None and name not in UNREAD and 'error="invalid_token"' not in challenge:
                problem = f"challenge without invalid_token: {challenge}"
            if problem is not None:
                wrong[name] = (path, response.status, problem)
    assert wrong == {}
    _assert_no_unexpected_errors(token_registry)


BASIC_VALUES: dict[str, str] = {
    "scheme-only": "Basic",
    "scheme-and-space": "Basic ",
    "not-base64": "Basic !!!",
    "base64-without-padding": "Basic " + base64.b64encode(b"alice:x").decode().rstrip("="),
    "no-colon": "Basic " + base64.b64encode(b"alice").decode(),
    "empty-user": "Basic " + base64.b64encode(b":" + PASSWORDS["alice"].encode()).decode(),
    "wrong-password": "Basic " + base64.b64encode(b"alice:wrong").decode(),
    "unknown-user": "Basic " + base64.b64encode(b"nobody:x").decode(),
    "not-utf8": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "nul-bytes": "Basic " + base64.b64encode(b"alice\x00:pw\x00x").decode(),
    "password-over-72-bytes": "Basic " + base64.b64encode(b"alice:" + b"p" * 5000).decode(),
    "three-words": "Basic a b c",
    "non-ascii": "Basic \u00e9\u00e9\u00e9\u00e9",
    "over-32k": "Basic " + "A" * 40_000,
    "other-scheme": "Digest username=alice",
    "bearer-on-basic": "Bearer abc.def.ghi",
    "empty": "",
    "spaces": "     ",
}


def test_every_malformed_basic_header_is_a_challenge(basic_registry: RunningRegistry) -> None:
    wrong: dict[str, tuple[bytes, int, str]] = {}
    for name, value in BASIC_VALUES.items():
        for path in PATHS:
            response = raw_request(basic_registry.port, "GET", path, [("Authorization", value)])
            problem = _challenge_problem(response, "Basic")
            if problem is not None:
                wrong[name] = (path, response.status, problem)
    assert wrong == {}
    _assert_no_unexpected_errors(basic_registry)


@pytest.mark.parametrize(
    "value", ["Bearer a\x00b", "Basic YWxpY2U6eA==\x7f\x01", "Bearer x\ry", "Basic \x0b"]
)
def test_a_header_that_breaks_http_is_a_400(
    token_registry: RunningRegistry, basic_registry: RunningRegistry, value: str
) -> None:
    """Control characters in the value: the HTTP server refuses the request before the registry."""
    for registry in (token_registry, basic_registry):
        response = raw_request(registry.port, "GET", b"/v2/", [("Authorization", value)])
        assert response.status == 400, response.status
        assert raw_request(registry.port, "GET", b"/v2/").status == 401


def _challenge_problem(response: RawResponse, scheme: str) -> str | None:
    """What is wrong with ``response`` as the registry's 401 challenge, or None."""
    if response.status != 401:
        return f"status {response.status}: {response.body[:200]!r}"
    found, params = challenge_params(response.headers.get("WWW-Authenticate", ""))
    if found != scheme or "realm" not in params:
        return f"challenge {response.headers.get('WWW-Authenticate')!r}"
    if json.loads(response.body)["errors"][0]["code"] != "UNAUTHORIZED":
        return f"body {response.body[:200]!r}"
    return None


def _assert_no_unexpected_errors(registry: RunningRegistry) -> None:
    log = registry.log()
    assert "Traceback" not in log
    assert "unexpected error" not in log.lower()
