"""Token signing keys: their identifiers, which algorithms each may verify, and loading trust.

Two identifiers name a public key in a token's ``kid`` header:

- the RFC 7638 JWK thumbprint (what Distribution 3 derives for ``rootcertbundle`` keys), and
- the legacy libtrust key id (what Distribution 2 and most token servers use): SHA-256 of the
  DER SubjectPublicKeyInfo, first 240 bits, base32 without padding, in twelve 4-character
  groups joined by ``:`` (e.g. ``PYYO:TEWU:V7JH:...:Z7Q6``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from config_reader import read_named_file

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
VerifyingKey = PublicKey | bytes
"""A public key, or the secret of a symmetric (``oct``) JWKS key."""

ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
SYMMETRIC_ALGORITHMS = ("HS256", "HS384", "HS512")
DEFAULT_ALGORITHMS = ASYMMETRIC_ALGORITHMS
"""HS* is never on by default: it only makes sense with shared secrets from a JWKS file."""
MIN_RSA_BITS = 2048
MIN_HMAC_BYTES = 32
_EC_ALGORITHM = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_JWK_CURVE = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(size, "big"))


def libtrust_key_id(key: PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[start : start + 4] for start in range(0, len(encoded), 4))


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The RFC 7517 members that define the key (exactly those RFC 7638 hashes)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _EC_JWK_CURVE.get(key.curve.name)
        if curve is None:
            raise ValueError(f"unsupported elliptic curve {key.curve.name}")
        size = (key.curve.key_size + 7) // 8
        point = key.public_numbers()
        return {"crv": curve, "kty": "EC", "x": _uint(point.x, size), "y": _uint(point.y, size)}
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    curve = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
    return {"crv": curve, "kty": "OKP", "x": b64url(raw)}


def jwk_thumbprint(key: VerifyingKey) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    members = {"k": b64url(key), "kty": "oct"} if isinstance(key, bytes) else public_jwk(key)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def signing_algorithm(key: PublicKey) -> str:
    """The JWS algorithm a token server uses with this key (RS256 for RSA, ES256/384/512 for EC)."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHM:
        return _EC_ALGORITHM[key.curve.name]
    raise ValueError("token signing keys must be RSA or EC P-256/P-384/P-521")


def key_accepts(key: VerifyingKey, algorithm: str) -> bool:
    """Whether ``key`` may verify ``algorithm``: never a public key for HS*, nor a wrong curve."""
    if isinstance(key, bytes):
        return algorithm in SYMMETRIC_ALGORITHMS
    if isinstance(key, rsa.RSAPublicKey):
        return algorithm[:2] in ("RS", "PS") and algorithm in ASYMMETRIC_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHM.get(key.curve.name) == algorithm
    return algorithm == "EdDSA"


def key_problem(key: VerifyingKey) -> str | None:
    """Why a key is too weak to trust, if it is."""
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS} needed)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_ALGORITHM:
        return f"unsupported elliptic curve {key.curve.name}"
    if isinstance(key, bytes) and len(key) < MIN_HMAC_BYTES:
        return f"symmetric key shorter than {MIN_HMAC_BYTES} bytes"
    return None


@dataclass(frozen=True, slots=True)
class TrustedKey:
    key: VerifyingKey
    algorithm: str | None = None
    """Pinned by the JWKS entry's ``alg``, if it has one."""


def as_public_key(key: object) -> PublicKey | None:
    if isinstance(
        key,
        rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey,
    ):
        key = key.public_key()
    if isinstance(
        key,
        rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey,
    ):
        return key
    return None


def load_certificates(path: Path, problems: list[str], key: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle."""
    data = read_named_file(path, problems, key)
    if data is None:
        return []
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        problems.append(f"{key}: {path} holds no readable PEM certificate")
        return []
    for certificate in certificates:
        public = as_public_key(certificate.public_key())
        weakness = key_problem(public) if public is not None else "unsupported key type"
        if weakness:
            problems.append(f"{key}: {path}: certificate {certificate.subject.rfc4514_string()}:"
                            f" {weakness}")  # fmt: skip
    return certificates


def load_jwks(path: Path, problems: list[str], key: str) -> dict[str, TrustedKey]:
    """``kid -> key`` from a JWKS file; public halves only, even if private members are present."""
    data = read_named_file(path, problems, key)
    if data is None:
        return {}
    try:
        document: Any = json.loads(data)
    except ValueError:
        problems.append(f"{key}: {path} is not JSON")
        return {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        problems.append(f'{key}: {path} has no "keys" list')
        return {}
    trusted: dict[str, TrustedKey] = {}
    for index, entry in enumerate(entries):
        where = f"{key}: {path}: keys[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            problems.append(f'{where}: needs a string "kid"')
            continue
        if entry.get("use", "sig") != "sig":
            continue  # an encryption key never verifies a signature
        try:
            parsed = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
            problems.append(f"{where}: unusable key ({error})")
            continue
        verifying: VerifyingKey | None = parsed if isinstance(parsed, bytes) else as_public_key(parsed)
        if verifying is None:
            problems.append(f"{where}: unsupported key type")
            continue
        weakness = key_problem(verifying)
        if weakness:
            problems.append(f"{where}: {weakness}")
            continue
        algorithm = entry.get("alg")
        if algorithm is not None and not (isinstance(algorithm, str) and key_accepts(verifying, algorithm)):
            problems.append(f'{where}: "alg" {algorithm!r} does not fit the key')
            continue
        trusted[entry["kid"]] = TrustedKey(verifying, algorithm)
    return trusted


def index_keys(
    certificates: Iterable[x509.Certificate], jwks: dict[str, TrustedKey]
) -> dict[str, TrustedKey]:
    """Every trusted key under each name a token may use for it in ``kid``."""
    index: dict[str, TrustedKey] = {}
    for certificate in certificates:
        public = as_public_key(certificate.public_key())
        if public is None or key_problem(public):
            continue
        trusted = TrustedKey(public)
        index[jwk_thumbprint(public)] = trusted
        index[libtrust_key_id(public)] = trusted
    for kid, trusted in jwks.items():
        if not isinstance(trusted.key, bytes):
            index.setdefault(jwk_thumbprint(trusted.key), trusted)
            index.setdefault(libtrust_key_id(trusted.key), trusted)
        index[kid] = trusted  # the file's own name for the key wins
    return index
