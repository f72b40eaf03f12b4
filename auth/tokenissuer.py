"""Signing the token server's access tokens and its stateless refresh tokens.

Access tokens follow spec-auth-jwt exactly and carry ``kid`` = the libtrust id of the signing key
(what Distribution 2 looks up) and, when a certificate is configured, ``x5c`` = that certificate
(what Distribution 3 verifies against its ``rootcertbundle``), so stock registries accept them.

Refresh tokens are signed by the same key, so any replica holding it can check them without
shared state. They are bound to the user's current htpasswd entry: changing the password or
removing the user revokes every refresh token issued before. A different ``typ`` and audience
keep a registry from ever taking one for an access token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config_reader import read_named_file

from .keys import as_public_key, key_problem, libtrust_key_id, signing_algorithm
from .scope import ResourceActions

REFRESH_TYPE = "dockyard-refresh+jwt"
REFRESH_AUDIENCE_PREFIX = "urn:dockyard:refresh:"
REFRESH_LEEWAY_SECONDS = 60

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class InvalidGrant(Exception):
    """A refresh token that is not ours, expired, or revoked."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str
    """RFC 3339, UTC."""


class TokenSigner:
    """A private key (RSA or EC) and, optionally, its certificate for the ``x5c`` header."""

    def __init__(self, private_key: PrivateKey, certificate: x509.Certificate | None) -> None:
        public = private_key.public_key()
        self.private_key = private_key
        self.public_key = public
        self.algorithm = signing_algorithm(public)
        self.kid = libtrust_key_id(public)
        self.x5c = (
            [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
            if certificate is not None
            else []
        )

    def sign(self, claims: dict[str, Any], media_type: str = "JWT") -> str:
        """A compact JWS; ``media_type`` is the ``typ`` header."""
        headers: dict[str, Any] = {"typ": media_type, "kid": self.kid}
        if self.x5c:
            headers["x5c"] = self.x5c
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=headers)


def load_signer(
    key_path: Path, certificate_path: Path | None, problems: list[str], where: str
) -> TokenSigner | None:
    """The signing key (PEM, unencrypted) and its certificate, checked to belong together."""
    key_pem = read_named_file(key_path, problems, f"{where}.signingkey")
    if key_pem is None:
        return None
    try:
        loaded = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        problems.append(f"{where}.signingkey: {key_path} is not an unencrypted PEM private key")
        return None
    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        problems.append(f"{where}.signingkey: must be an RSA or EC (P-256/384/521) key")
        return None
    weakness = key_problem(loaded.public_key())
    if weakness:
        problems.append(f"{where}.signingkey: {weakness}")
        return None
    certificate = None
    if certificate_path is not None:
        certificate_pem = read_named_file(certificate_path, problems, f"{where}.certificate")
        if certificate_pem is None:
            return None
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
        except ValueError:
            problems.append(f"{where}.certificate: {certificate_path} is not a PEM certificate")
            return None
        if as_public_key(certificate.public_key()) != loaded.public_key():
            problems.append(f"{where}.certificate: does not hold the signing key's public key")
            return None
    return TokenSigner(loaded, certificate)


def password_binding(entry: bytes) -> str:
    """A short digest of the user's htpasswd entry; it changes whenever the password does."""
    return hashlib.sha256(b"dockyard refresh binding\0" + entry).hexdigest()[:32]


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenIssuer:
    def __init__(
        self,
        *,
        signer: TokenSigner,
        issuer: str,
        service: str,
        expiration: float,
        refresh_expiration: float,
    ) -> None:
        self.signer = signer
        self.issuer = issuer
        self.service = service
        self.expiration = int(expiration)
        self.refresh_expiration = int(refresh_expiration)

    def access_token(self, account: str | None, granted: Sequence[ResourceActions]) -> IssuedToken:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + self.expiration,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [resource.claim() for resource in granted],
        }
        return IssuedToken(self.signer.sign(claims), self.expiration, rfc3339(now))

    def refresh_token(self, account: str, entry: bytes) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": REFRESH_AUDIENCE_PREFIX + self.service,
            "exp": now + self.refresh_expiration,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "bnd": password_binding(entry),
        }
        return self.signer.sign(claims, REFRESH_TYPE)

    def refresh_subject(self, token: str) -> tuple[str, str]:
        """The account and password binding of a valid refresh token of ours."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != REFRESH_TYPE:
                raise InvalidGrant("not a refresh token")
            claims = jwt.decode(
                token,
                key=self.signer.public_key,
                algorithms=[self.signer.algorithm],
                audience=REFRESH_AUDIENCE_PREFIX + self.service,
                issuer=self.issuer,
                leeway=REFRESH_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidGrant(f"refresh token refused ({type(error).__name__})") from error
        account, binding = claims.get("sub"), claims.get("bnd")
        if not isinstance(account, str) or not account or not isinstance(binding, str):
            raise InvalidGrant("refresh token without subject")
        return account, binding


def binding_matches(binding: str, entry: bytes | None) -> bool:
    return entry is not None and hmac.compare_digest(binding, password_binding(entry))
