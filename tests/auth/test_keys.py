"""Key identifiers against published vectors, JWKS loading, algorithm/key pairing, key generation."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth.keygen import generate_token_key
from auth.keys import jwk_thumbprint, key_accepts, libtrust_key_id, load_jwks, public_jwk

# The ES256 key of spec-auth-jwt.md, whose kid the spec gives.
SPEC_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q",
    "y": "dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc",
}
SPEC_KID = "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"
# RFC 7638 section 3.1.
RFC7638_KEY = {
    "kty": "RSA",
    "e": "AQAB",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
    "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6W"
    "eZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_libtrust_key_id_matches_the_spec_example() -> None:
    assert libtrust_key_id(jwt.PyJWK(SPEC_KEY).key) == SPEC_KID


def test_jwk_thumbprint_matches_rfc7638() -> None:
    assert jwk_thumbprint(jwt.PyJWK(RFC7638_KEY).key) == RFC7638_THUMBPRINT


def test_ec_coordinates_keep_leading_zero_bytes() -> None:
    """RFC 7518: x and y are exactly the curve's size; a short coordinate must be padded."""
    for _ in range(300):  # about one key in 128 has a coordinate with a leading zero byte
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        jwk = public_jwk(key)
        assert len(jwt.utils.base64url_decode(jwk["x"])) == 32
        assert len(jwt.utils.base64url_decode(jwk["y"])) == 32


@pytest.mark.parametrize(
    ("key", "accepted", "refused"),
    [
        (
            rsa.generate_private_key(65537, 2048).public_key(),
            ["RS256", "RS512", "PS256"],
            ["HS256", "ES256", "EdDSA", "none"],
        ),
        (
            ec.generate_private_key(ec.SECP256R1()).public_key(),
            ["ES256"],
            ["ES384", "ES512", "RS256", "HS256", "none"],
        ),
        (
            ec.generate_private_key(ec.SECP384R1()).public_key(),
            ["ES384"],
            ["ES256", "HS384"],
        ),
        (b"k" * 32, ["HS256", "HS512"], ["RS256", "ES256", "none"]),
    ],
    ids=["rsa", "p256", "p384", "oct"],
)
def test_keys_verify_only_their_own_algorithms(key: object, accepted: list[str], refused: list[str]) -> None:
    for algorithm in accepted:
        assert key_accepts(key, algorithm), algorithm  # type: ignore[arg-type]
    for algorithm in refused:
        assert not key_accepts(key, algorithm), algorithm  # type: ignore[arg-type]


def test_jwks_loads_public_halves_and_reports_bad_entries(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    with_private_part = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private))
    with_private_part["kid"] = "signer-1"
    weak = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key()))
    weak["kid"] = "weak"
    mismatched = {**SPEC_KEY, "kid": "mismatch", "alg": "RS256"}
    encryption = {**SPEC_KEY, "kid": "enc", "use": "enc"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [with_private_part, weak, mismatched, encryption, {"kty": "EC"}]}))
    problems: list[str] = []
    keys = load_jwks(path, problems, "auth.token.jwks")
    assert set(keys) == {"signer-1"}
    assert keys["signer-1"].key == private.public_key()
    assert not isinstance(keys["signer-1"].key, ec.EllipticCurvePrivateKey)
    by_entry = {problem.split(": ")[2]: problem.split(": ", 3)[3] for problem in problems}
    assert by_entry["keys[1]"] == "RSA key of 1024 bits (at least 2048 needed)"
    assert "RSA" in by_entry["keys[2]"]  # an EC key that claims to be for RS256
    assert by_entry["keys[4]"] == 'needs a string "kid"'
    assert "keys[3]" not in by_entry  # an encryption key is skipped, not an error


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_generated_key_and_certificate_belong_together(tmp_path: Path, algorithm: str) -> None:
    generated = generate_token_key(tmp_path, algorithm)
    private = serialization.load_pem_private_key(generated.key_path.read_bytes(), None)
    certificate = x509.load_pem_x509_certificate(generated.certificate_path.read_bytes())
    assert certificate.public_key() == private.public_key()
    assert generated.key_id == libtrust_key_id(certificate.public_key())  # type: ignore[arg-type]
    assert generated.key_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        generate_token_key(tmp_path, algorithm)
    again = generate_token_key(tmp_path, algorithm, overwrite=True)
    assert again.key_id != generated.key_id
