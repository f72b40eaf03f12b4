"""The built-in token server (spec-auth-token GET, spec-auth-oauth POST) as an ASGI app.

``dockyard serve`` mounts it at ``tokenserver.path`` in the registry's own process;
``dockyard token-server CONFIG`` runs it alone. It authenticates users from an htpasswd file,
grants the intersection of the requested scopes and the ACL, and signs short-lived tokens.
Asking for more than one may have is not an error: the token simply carries less.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .base import Access
from .credentials import authorization, challenge, parse_basic
from .jwtverify import InvalidToken
from .scope import ResourceActions, ScopeError, group_accesses, parse_scopes, scope_string
from .section import AuthConfigError, Section
from .token import token_controller
from .tokenconfig import TokenServerSettings, read_token_server
from .tokenissuer import InvalidGrant, binding_matches

log = logging.getLogger("dockyard.auth.tokenserver")

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""Token responses must never be cached (RFC 6749 section 5.1)."""


class RequestError(Exception):
    """Answered as an OAuth-style error; ``description`` is safe to show (never a secret)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class TokenServer:
    """ASGI app answering GET and POST on whatever path it is mounted at."""

    def __init__(self, settings: TokenServerSettings) -> None:
        self.settings = settings
        self.basic_challenge = challenge("Basic", {"realm": settings.service})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if request.method == "GET":
                response = await self.get_token(request)
            elif request.method == "POST":
                response = await self.post_token(request)
            else:
                response = Response(status_code=405, headers={"Allow": "GET, POST"})
        except RequestError as error:
            response = self.error_response(error)
        await response(scope, receive, send)

    def error_response(self, error: RequestError) -> Response:
        headers = dict(NO_STORE)
        if error.status == 401:
            headers["WWW-Authenticate"] = self.basic_challenge
        body = {
            "error": error.error,
            "error_description": error.description,
            "details": error.description,  # what Docker's client prints
        }
        return JSONResponse(body, status_code=error.status, headers=headers)

    async def get_token(self, request: Request) -> Response:
        """spec-auth-token: Basic credentials (or none), ``scope`` repeated, ``offline_token``."""
        query = request.query_params
        self._check_service(query.get("service"))
        account = None
        encoded = authorization(request.headers, "basic")
        if encoded is not None:
            credentials = parse_basic(encoded)
            if credentials is None:
                raise RequestError(401, "invalid_request", "malformed Basic credentials")
            account = await self._login(credentials.username, credentials.password)
            requested_account = query.get("account")
            if requested_account and requested_account != account:
                raise RequestError(400, "invalid_request", "account does not match credentials")
        requested = self._scopes(query.getlist("scope"))
        granted = self.settings.acl.grant(account, requested)
        issued = self.settings.issuer.access_token(account, granted)
        body: dict[str, Any] = {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
        }
        if account is not None and query.get("offline_token", "").lower() == "true":
            body["refresh_token"] = await self._refresh_token(account)
        self._log_issue(account, query.get("client_id", ""), granted)
        return JSONResponse(body, headers=NO_STORE)

    async def post_token(self, request: Request) -> Response:
        """spec-auth-oauth: ``grant_type`` password or refresh_token, form-encoded."""
        form = await self._form(request)
        self._check_service(_field(form, "service"))
        grant_type = _field(form, "grant_type")
        refresh_token = None
        if grant_type == "password":
            username, password = _field(form, "username"), _field(form, "password")
            if not username or password is None:
                raise RequestError(400, "invalid_request", "username and password are required")
            account = await self._login(username, password)
            if _field(form, "access_type") == "offline":
                refresh_token = await self._refresh_token(account)
        elif grant_type == "refresh_token":
            refresh_token = _field(form, "refresh_token")
            if not refresh_token:
                raise RequestError(400, "invalid_request", "refresh_token is required")
            account = await self._refreshed_account(refresh_token)
        else:
            raise RequestError(400, "unsupported_grant_type", "grant_type must be password or"
                               " refresh_token")  # fmt: skip
        requested = self._scopes(form.get("scope", []))
        granted = self.settings.acl.grant(account, requested)
        issued = self.settings.issuer.access_token(account, granted)
        body: dict[str, Any] = {
            "access_token": issued.token,
            "token": issued.token,
            "scope": scope_string(granted),
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        self._log_issue(account, _field(form, "client_id") or "", granted)
        return JSONResponse(body, headers=NO_STORE)

    async def sign_in(self, username: str, password: str) -> str | None:
        """A refresh token for the account, as ``docker login`` gets one (what the web interface
        keeps for a signed-in user); None for wrong credentials."""
        try:
            return await self._refresh_token(await self._login(username, password))
        except RequestError:
            return None

    async def signed_in_account(self, refresh_token: str) -> str | None:
        """The account of a refresh token of this server's; None once it expired or was revoked."""
        try:
            return await self._refreshed_account(refresh_token)
        except RequestError:
            return None

    def access_token(self, account: str | None, accesses: Sequence[Access]) -> str:
        """An access token carrying what the rules grant ``account`` (None: anonymous) of
        ``accesses``, for an account the caller has authenticated."""
        granted = self.settings.acl.grant(account, group_accesses(accesses))
        return self.settings.issuer.access_token(account, granted).token

    def _check_service(self, service: str | None) -> None:
        if service and service != self.settings.service:
            raise RequestError(400, "invalid_request", f"unknown service {service!r}")

    def _scopes(self, values: list[str]) -> list[ResourceActions]:
        try:
            return parse_scopes(values)
        except ScopeError as error:
            raise RequestError(400, "invalid_scope", str(error)) from None

    async def _login(self, username: str, password: str) -> str:
        if not await self.settings.users.verify(username, password):
            log.warning("token request refused: wrong credentials for account %r", username)
            raise RequestError(401, "invalid_grant", "incorrect username or password")
        return username

    async def _refresh_token(self, account: str) -> str:
        entry = await self.settings.users.entry(account)
        if entry is None:  # removed between login and now
            raise RequestError(401, "invalid_grant", "incorrect username or password")
        return self.settings.issuer.refresh_token(account, entry)

    async def _refreshed_account(self, token: str) -> str:
        try:
            account, binding = self.settings.issuer.refresh_subject(token)
        except InvalidGrant as error:
            log.info("%s", error)
            raise RequestError(401, "invalid_grant", "invalid or expired refresh token") from None
        if not binding_matches(binding, await self.settings.users.entry(account)):
            log.info("refresh token of %r revoked: the account or its password changed", account)
            raise RequestError(401, "invalid_grant", "invalid or expired refresh token")
        return account

    async def _form(self, request: Request) -> dict[str, list[str]]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise RequestError(400, "invalid_request", "expected an urlencoded form body")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_FORM_BYTES:
                raise RequestError(413, "invalid_request", "form body too large")
        try:
            return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            raise RequestError(400, "invalid_request", "malformed form body") from None

    def _log_issue(self, account: str | None, client_id: str, granted: list[ResourceActions]) -> None:
        log.info(
            "token issued to %s (client %r): %s",
            account or "anonymous",
            client_id,
            scope_string(granted) or "no access",
        )


def _field(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def standalone_app(server: TokenServer) -> Starlette:
    """The token server alone, at its configured path (``dockyard token-server``)."""
    return Starlette(routes=[Route(server.settings.path, server, methods=["GET", "POST"])])


def create_token_server(
    section: object, *, auth: Mapping[str, Any] | None, embedded: bool
) -> TokenServer | None:
    """The token server for the ``tokenserver`` section, or None when there is none.

    ``auth`` is the configuration's ``auth`` section. ``embedded``: the registry serves the
    token server too, so its ``auth.token`` must trust exactly these tokens; that is proven by
    verifying a freshly signed one. Raises AuthConfigError listing every problem.
    """
    if section is None:
        return None
    problems: list[str] = []
    settings = read_token_server(section, problems)
    token_section = auth.get("token") if isinstance(auth, Mapping) else None
    if settings is not None and token_section is not None:
        problems.extend(_trust_problems(settings, token_section))
    elif token_section is None and embedded:
        problems.append(
            "tokenserver: configured, but auth.token is not: the registry would not ask for the"
            " tokens it issues"
        )
    if problems:
        raise AuthConfigError(problems)
    assert settings is not None
    return TokenServer(settings)


def _trust_problems(settings: TokenServerSettings, token_section: object) -> list[str]:
    """Why ``auth.token`` would refuse this token server's tokens (if it would)."""
    problems: list[str] = []
    controller = token_controller(Section("auth.token", token_section, problems))
    if problems:
        return []  # create_access_controller reports those
    if controller.verifier.issuer != settings.issuer.issuer:
        problems.append("tokenserver.issuer: must equal auth.token.issuer")
    if controller.service != settings.service:
        problems.append("tokenserver.service: must equal auth.token.service")
    if problems:
        return problems
    probe = settings.issuer.access_token(None, [])
    try:
        controller.verifier.verify(probe.token)
    except InvalidToken as error:
        problems.append(
            f"auth.token does not accept tokenserver's tokens ({error}): put tokenserver's"
            " certificate in auth.token.rootcertbundle"
        )
    return problems
