"""The ``tokenserver`` section (Dockyard's extension of Distribution's config.yml).

::

    tokenserver:
      path: /auth/token                 # where `dockyard serve` answers token requests
      addr: 127.0.0.1:5001              # where `dockyard token-server` listens (alone)
      tls: {certificate: ..., key: ...} # HTTPS for `dockyard token-server` (alone)
      issuer: dockyard                  # = auth.token.issuer
      service: registry.example.com     # = auth.token.service
      signingkey: /etc/dockyard/token.key
      certificate: /etc/dockyard/token.crt   # = auth.token.rootcertbundle
      htpasswd: /etc/dockyard/htpasswd
      expiration: 5m                    # access tokens
      refreshexpiration: 720h           # refresh tokens (docker login's stored identity token)
      groups: {ci: [builder]}
      acl: [...]                        # see auth.acl
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .acl import Acl, read_groups, read_rules
from .htpasswd import HtpasswdUsers
from .section import Section
from .tokenissuer import TokenIssuer, load_signer

DEFAULT_PATH = "/auth/token"
DEFAULT_ADDR = "127.0.0.1:5001"
DEFAULT_EXPIRATION = 300.0
MIN_EXPIRATION = 60.0
"""Clients treat shorter-lived tokens as broken (spec-auth-token: never under 60 seconds)."""
DEFAULT_REFRESH_EXPIRATION = 30 * 24 * 3600.0
KEYS = (
    "path", "addr", "tls", "issuer", "service", "signingkey", "certificate", "htpasswd",
    "expiration", "refreshexpiration", "groups", "acl",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenServerSettings:
    path: str
    addr: str
    tls_certificate: Path | None
    tls_key: Path | None
    service: str
    issuer: TokenIssuer
    users: HtpasswdUsers
    acl: Acl


def read_token_server(value: object, problems: list[str]) -> TokenServerSettings | None:
    """Settings from the ``tokenserver`` section, or None with every problem recorded."""
    before = len(problems)
    section = Section("tokenserver", value, problems)
    section.reject_unknown(KEYS)
    path = section.string("path", default=DEFAULT_PATH)
    if not path.startswith("/") or path.startswith("/v2"):
        section.problem("path", "must start with / and lie outside /v2/")
    addr = section.address("addr", default=DEFAULT_ADDR)
    tls = section.section("tls")
    tls.reject_unknown(["certificate", "key"])
    tls_certificate = tls.existing_file("certificate")
    tls_key = tls.existing_file("key")
    if (tls_certificate is None) != (tls_key is None):
        tls.problems.append("tokenserver.tls: give both certificate and key")
    issuer_name = section.string("issuer", required=True)
    service = section.string("service", required=True)
    expiration = section.duration("expiration", default=DEFAULT_EXPIRATION, minimum=MIN_EXPIRATION)
    refresh_expiration = section.duration(
        "refreshexpiration", default=DEFAULT_REFRESH_EXPIRATION, minimum=expiration
    )
    key_path = section.existing_file("signingkey", required=True)
    certificate_path = section.existing_file("certificate")
    signer = load_signer(key_path, certificate_path, problems, "tokenserver") if key_path else None
    users = None
    if htpasswd := section.existing_file("htpasswd", required=True):
        users = HtpasswdUsers.load(htpasswd, problems, "tokenserver.htpasswd")
    groups = read_groups(section.section("groups"))
    acl: Acl = read_rules(section.values.get("acl"), groups, problems)
    if len(problems) > before or signer is None or users is None:
        return None
    issuer = TokenIssuer(
        signer=signer,
        issuer=issuer_name,
        service=service,
        expiration=expiration,
        refresh_expiration=refresh_expiration,
    )
    return TokenServerSettings(
        path=path,
        addr=addr,
        tls_certificate=tls_certificate,
        tls_key=tls_key,
        service=service,
        issuer=issuer,
        users=users,
        acl=acl,
    )
