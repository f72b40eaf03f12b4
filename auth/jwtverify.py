"""Verifying registry bearer tokens (spec-auth-jwt): signature, issuer, audience, times, access.

Only configured keys ever verify a signature. The token header may *name* a key (``kid``) or
present a certificate chain (``x5c``) that must chain to a configured root certificate; a key
carried in the header itself (``jwk``) or fetched from a URL (``jku``, ``x5u``) is never used.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.x509 import verification

from .base import Access
from .keys import TrustedKey, as_public_key, key_accepts, key_problem
from .scope import resource_type

LEEWAY_SECONDS = 60
"""Clock skew allowed between token server and registry (what Distribution allows)."""
MAX_NUMERIC_DATE = 253402300799
"""9999-12-31T23:59:59Z: later times are no sane token lifetime, and overflow date arithmetic."""
MAX_TOKEN_LENGTH = 32 * 1024
MAX_CHAIN_LENGTH = 5
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
"""``typ`` values of access tokens; anything else (a refresh token, say) is refused."""


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (it never contains the token)."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    expires: float
    access: Mapping[tuple[str, str], frozenset[str]]

    def allows(self, access: Access) -> bool:
        actions = self.access.get((access.type, access.name), frozenset())
        return "*" in actions or access.action in actions


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2): a JSON number of seconds, finite and within
    MAX_NUMERIC_DATE; None when absent. Strings, booleans and the rest refuse the token."""
    if name not in claims:
        return None
    value = claims[name]
    if type(value) not in (int, float) or not 0 <= value <= MAX_NUMERIC_DATE:
        raise InvalidToken(f"{name} claim is not a NumericDate")
    return float(value)


def _access_claim(claims: Mapping[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    entries = claims.get("access", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise InvalidToken("access claim is not a list")
    granted: dict[tuple[str, str], set[str]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidToken("access entry is not an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions", [])
        if not isinstance(kind, str) or not isinstance(name, str):
            raise InvalidToken("access entry without string type and name")
        if actions is None:
            actions = []
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise InvalidToken("access entry actions are not a list of strings")
        base_type = resource_type(kind)
        if base_type is None:
            raise InvalidToken("access entry has a malformed type")
        granted.setdefault((base_type, name), set()).update(actions)
    return {resource: frozenset(actions) for resource, actions in granted.items()}


class TokenVerifier:
    """Checks a compact JWS against the configured issuer, audience, keys and algorithms."""

    def __init__(
        self,
        *,
        issuer: str,
        service: str,
        keys: Mapping[str, TrustedKey],
        roots: Collection[x509.Certificate],
        algorithms: Collection[str],
        leeway: float = LEEWAY_SECONDS,
    ) -> None:
        self.issuer = issuer
        self.service = service
        self.keys = dict(keys)
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.roots = list(roots)

    def verify(self, token: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:  # not only DecodeError: a bad crit or kid is refused too
            raise InvalidToken("malformed token header") from error
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted")
        kind = header.get("typ", "JWT")
        if not isinstance(kind, str) or kind.lower() not in ACCEPTED_TYPES:
            raise InvalidToken(f"token type {kind!r} is not an access token")
        if "crit" in header:
            raise InvalidToken("critical header extensions are not supported")
        key = self._signing_key(header, algorithm)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.service,
                issuer=self.issuer,
                # The times are checked below: PyJWT reads any int()-able value as a NumericDate.
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError as error:
            raise InvalidToken("token is for another service") from error
        except jwt.InvalidIssuerError as error:
            raise InvalidToken("token from an untrusted issuer") from error
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"token lacks the {error.claim} claim") from error
        except jwt.InvalidSignatureError as error:
            raise InvalidToken("signature does not verify") from error
        except jwt.PyJWTError as error:
            raise InvalidToken(f"invalid token ({type(error).__name__})") from error
        expires = self._check_times(claims)
        subject = claims.get("sub", "")
        if not isinstance(subject, str):
            raise InvalidToken("sub claim is not a string")
        return VerifiedToken(subject, expires, _access_claim(claims))

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        """``exp``, ``nbf`` and ``iat`` against the clock, with leeway; the expiry time."""
        now = time.time()
        expires = _numeric_date(claims, "exp")
        if expires is None or expires <= now - self.leeway:
            raise InvalidToken("token expired")
        for name in ("nbf", "iat"):
            start = _numeric_date(claims, name)
            if start is not None and start > now + self.leeway:
                raise InvalidToken(f"token not valid yet ({name})")
        return expires

    def _signing_key(self, header: Mapping[str, Any], algorithm: str) -> Any:
        """The configured key the header names, or the verified x5c leaf key."""
        kid = header.get("kid")
        trusted = self.keys.get(kid) if isinstance(kid, str) else None
        if trusted is None:
            chain = header.get("x5c")
            if chain is None:
                raise InvalidToken("token names no trusted signing key")
            trusted = TrustedKey(self._chain_key(chain))
        if trusted.algorithm is not None and trusted.algorithm != algorithm:
            raise InvalidToken("signing algorithm does not match the key's pinned algorithm")
        if not key_accepts(trusted.key, algorithm):
            raise InvalidToken(f"signing algorithm {algorithm} does not fit the key")
        return trusted.key

    def _chain_key(self, chain: object) -> Any:
        if not self.roots:
            raise InvalidToken("x5c given but no root certificates are configured")
        if not isinstance(chain, list) or not 0 < len(chain) <= MAX_CHAIN_LENGTH:
            raise InvalidToken("malformed x5c chain")
        try:
            certificates = [
                x509.load_der_x509_certificate(base64.b64decode(item, validate=True)) for item in chain
            ]
        except (binascii.Error, ValueError, TypeError) as error:
            raise InvalidToken("malformed x5c certificate") from error
        try:
            _chain_verifier(self.roots).verify(certificates[0], certificates[1:])
        except verification.VerificationError as error:
            raise InvalidToken("x5c chain does not lead to a trusted root") from error
        key = as_public_key(certificates[0].public_key())
        if key is None or key_problem(key):
            raise InvalidToken("x5c leaf key is unsupported or too weak")
        return key


def _chain_verifier(roots: list[x509.Certificate]) -> verification.ClientVerifier:
    """Chain building and signature/validity checks to the roots; no TLS name or usage rules.

    Built per use: a verifier checks validity periods at the time it was built.
    """
    permissive = verification.ExtensionPolicy.permit_all()
    ca_policy = permissive.require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)
    return (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .max_chain_depth(MAX_CHAIN_LENGTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=permissive)
        .build_client_verifier()
    )
