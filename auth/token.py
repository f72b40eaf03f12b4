"""Docker token authentication (spec-auth-token): the registry side.

A request without a bearer token, or with one that does not verify, gets a 401 challenge naming
the token server (``realm``), this registry (``service``) and the scopes the request needs; a
token that verifies but lacks a scope gets the same challenge with ``error="insufficient_scope"``,
which is how clients learn to fetch a broader token.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from .acl import Acl
from .base import Access, AccessController, Challenge, Grant
from .credentials import authorization, challenge
from .jwtverify import InvalidToken, TokenVerifier, VerifiedToken
from .keys import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_ALGORITHMS,
    SYMMETRIC_ALGORITHMS,
    index_keys,
    load_certificates,
    load_jwks,
)
from .scope import group_accesses, scope_string
from .section import Section

log = logging.getLogger("dockyard.auth")

DEFAULT_AUTOREDIRECT_PATH = "/auth/token"
VERIFIED_CACHE_ENTRIES = 1024
"""Tokens already verified in this process; clients send one token with many requests."""


class TokenAccessController(AccessController):
    def __init__(
        self,
        *,
        realm: str,
        service: str,
        verifier: TokenVerifier,
        autoredirect: bool = False,
        autoredirect_path: str = DEFAULT_AUTOREDIRECT_PATH,
        acl: Acl | None = None,
    ) -> None:
        self.realm = realm
        self.service = service
        self.verifier = verifier
        self.autoredirect = autoredirect
        self.autoredirect_path = autoredirect_path
        self.acl = acl
        """The built-in token server's rules, when it runs beside the registry: they say which
        repositories each account may pull."""
        self._verified: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        token = authorization(headers, "bearer")
        if token is None:
            raise self._challenge(headers, required, None, "authentication required")
        try:
            verified = self._verify(token)
        except InvalidToken as error:
            log.info("bearer token refused: %s", error)
            raise self._challenge(headers, required, "invalid_token", str(error)) from None
        if not all(verified.allows(access) for access in required):
            raise self._challenge(headers, required, "insufficient_scope", "insufficient scope")
        return Grant(verified.subject or None, frozenset(required))

    def catalog_filter(self, grant: Grant) -> Callable[[str], bool] | None:
        if self.acl is None:
            return None  # an external token server's rules are unknown here
        acl, account = self.acl, grant.account
        return lambda name: acl.permits(account, "repository", name, "pull")

    def decider(self, grant: Grant | None) -> Callable[[Access], bool] | None:
        if self.acl is None:
            return None  # an external token server's rules are unknown here
        # The rules the built-in token server grants tokens by, so the same answer a token for
        # these accesses would bring.
        permits = self.acl.permits_for(grant.account if grant is not None else None)
        return lambda access: permits(access.type, access.name, access.action)

    def _verify(self, token: str) -> VerifiedToken:
        key = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(key)
        if known is not None and known.expires + self.verifier.leeway >= time.time():
            return known
        verified = self.verifier.verify(token)
        self._verified[key] = verified
        while len(self._verified) > VERIFIED_CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return verified

    def realm_for(self, headers: Mapping[str, str]) -> str:
        """The configured realm, or with ``autoredirect`` this registry's own token endpoint."""
        host = headers.get("host")
        if not self.autoredirect or not host:
            return self.realm
        forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        scheme = forwarded if forwarded in ("http", "https") else "https"
        return f"{scheme}://{host}{self.autoredirect_path}"

    def _challenge(
        self,
        headers: Mapping[str, str],
        required: Sequence[Access],
        error: str | None,
        reason: str,
    ) -> Challenge:
        params = {"realm": self.realm_for(headers), "service": self.service}
        scope = scope_string(group_accesses(required))
        if scope:
            params["scope"] = scope
        if error:
            params["error"] = error
        detail = [{"Type": a.type, "Name": a.name, "Action": a.action} for a in required]
        return Challenge(challenge("Bearer", params), detail or reason)


def token_controller(section: Section, acl: Acl | None = None) -> TokenAccessController:
    """The controller for ``auth.token`` (Distribution's keys); problems go to ``section``.
    ``acl``: the built-in token server's rules, which filter the catalog."""
    section.reject_unknown(
        ["realm", "service", "issuer", "rootcertbundle", "jwks", "signingalgorithms",
         "autoredirect", "autoredirectpath"]
    )  # fmt: skip
    realm = section.string("realm", required=True)
    service = section.string("service", required=True)
    issuer = section.string("issuer", required=True)
    autoredirect = section.flag("autoredirect")
    redirect_path = section.url_path("autoredirectpath", default=DEFAULT_AUTOREDIRECT_PATH)
    supported = ASYMMETRIC_ALGORITHMS + SYMMETRIC_ALGORITHMS
    algorithms = section.string_list("signingalgorithms") or list(DEFAULT_ALGORITHMS)
    for algorithm in algorithms:
        if algorithm not in supported:
            section.problem("signingalgorithms", f"{algorithm!r} is not one of {supported}")
    problems = section.problems
    certificates = []
    if bundle_path := section.existing_file("rootcertbundle"):
        certificates = load_certificates(bundle_path, problems, f"{section.name}.rootcertbundle")
    jwks = {}
    if jwks_path := section.existing_file("jwks"):
        jwks = load_jwks(jwks_path, problems, f"{section.name}.jwks")
    if "rootcertbundle" not in section and "jwks" not in section:
        section.problem("rootcertbundle", "required (or jwks): the keys that sign tokens")
    elif not certificates and not jwks:
        problems.append(f"{section.name}: no usable token signing key in rootcertbundle or jwks")
    verifier = TokenVerifier(
        issuer=issuer,
        service=service,
        keys=index_keys(certificates, jwks),
        roots=certificates,
        algorithms=algorithms,
    )
    return TokenAccessController(
        realm=realm,
        service=service,
        verifier=verifier,
        autoredirect=autoredirect,
        autoredirect_path=redirect_path,
        acl=acl,
    )
