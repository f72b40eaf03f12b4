"""Creating the token server's signing key and the self-signed certificate registries trust."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .files import write_atomically
from .keys import libtrust_key_id

KEY_FILE = "token.key"
CERTIFICATE_FILE = "token.crt"
ALGORITHMS = ("ES256", "RS256")
CERTIFICATE_DAYS = 3650
RSA_BITS = 3072


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    key_path: Path
    certificate_path: Path
    key_id: str
    """The libtrust key id the token server puts in ``kid``."""


def generate_token_key(
    directory: Path,
    algorithm: str = "ES256",
    common_name: str = "dockyard token signer",
    *,
    overwrite: bool = False,
) -> GeneratedKey:
    """Write ``token.key`` (private, mode 0600) and ``token.crt`` (for ``rootcertbundle``).

    Refuses to replace existing files unless ``overwrite``: a new key logs every user out.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    key_path, certificate_path = directory / KEY_FILE, directory / CERTIFICATE_FILE
    if not overwrite:
        for path in (key_path, certificate_path):
            if path.exists():
                raise FileExistsError(f"{path} exists; pass overwrite to replace it")
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm == "ES256"
        else rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_only = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False,
        crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(signing_only, critical=True)
        .sign(private_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(key_path, key_pem, 0o600)
    write_atomically(certificate_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return GeneratedKey(key_path, certificate_path, libtrust_key_id(private_key.public_key()))
