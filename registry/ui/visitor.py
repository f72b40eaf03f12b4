"""Who is browsing, and what they may do: always the registry's own access decision.

Every question ("may this visitor pull these repositories?") becomes the accesses
``registry.access.accesses_for`` names, put to the registry's access controller with the
visitor's credentials, exactly as the API would put them. What the credentials are depends on
the controller:

- none configured: every visitor is anonymous and may do everything;
- Basic (htpasswd): the ``Authorization`` header the visitor's session keeps (or the request
  carries);
- tokens from the built-in token server: an access token the token server issues for the
  visitor's account (anonymous when signed out) with the accesses asked about, which the
  controller then verifies like any other;
- tokens from an external server: the bearer token the request carries, as it is.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from auth import Access, AccessController, Challenge, Denied, Grant

from ..access import Action, accesses_for

if TYPE_CHECKING:
    from auth import TokenServer


EMPTY_BASIC = "Basic " + base64.b64encode(b":").decode()
"""What ``docker search`` over TLS sends when not logged in: no credentials at all."""

HeadersFor = Callable[[Sequence[Access]], Awaitable[Mapping[str, str]]]


@dataclass(frozen=True, slots=True)
class Visitor:
    account: str | None
    """None when anonymous."""
    controller: AccessController
    headers_for: HeadersFor
    """The request headers that show the controller the visitor's credentials for ``accesses``."""
    decide: Callable[[Access], bool] | None = None
    """The controller's own decision by name for this visitor, when it can give one."""

    async def may(self, action: Action, target: str | None) -> bool:
        return (await self.allowed(action, [target]))[0]

    async def allowed(self, action: Action, targets: Sequence[str | None]) -> list[bool]:
        """For each target, whether the controller grants ``action`` on it: by name when the
        controller decides so, else by asking it with one set of credentials for the batch."""
        wanted = [accesses_for(action, target) for target in targets]
        if self.decide is not None:
            return [all(map(self.decide, accesses)) for accesses in wanted]
        headers = await self.headers_for([access for accesses in wanted for access in accesses])
        return [await _granted(self.controller, headers, accesses) for accesses in wanted]


async def _granted(
    controller: AccessController, headers: Mapping[str, str], accesses: Sequence[Access]
) -> bool:
    try:
        await controller.authorize(headers, accesses)
    except (Challenge, Denied):
        return False
    return True


class Gate:
    """Turns credentials into visitors, and a username and password into a session credential."""

    def __init__(self, controller: AccessController, token_server: TokenServer | None) -> None:
        self.controller = controller
        self.token_server = token_server

    async def sign_in_scheme(self) -> str | None:
        """How the interface signs users in: ``token`` (the built-in token server), ``basic``
        (the controller asks for Basic credentials), or None (nobody signs in: no access control,
        or tokens from a server the registry cannot ask)."""
        if self.token_server is not None:
            return "token"
        try:
            await self.controller.authorize({}, ())
        except Challenge as challenge:
            return "basic" if challenge.www_authenticate.lower().startswith("basic ") else None
        except Denied:
            return None
        return None

    async def sign_in(self, username: str, password: str) -> str | None:
        """The credential a session keeps for these credentials; None when they are wrong."""
        if self.token_server is not None:
            return await self.token_server.sign_in(username, password)
        header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        try:
            grant = await self.controller.authorize({"authorization": header}, ())
        except (Challenge, Denied):
            return None
        return header if grant.account == username else None

    async def from_session(self, account: str | None, credential: str | None) -> Visitor | None:
        """The visitor a session stands for; None when its credential no longer holds (password
        changed, account removed, refresh token expired)."""
        if credential is None:
            return self._anonymous()
        if self.token_server is not None:
            signed_in = await self.token_server.signed_in_account(credential)
            if signed_in is None or signed_in != account:
                return None
            return self._token_visitor(self.token_server, signed_in)
        try:
            grant = await self.controller.authorize({"authorization": credential}, ())
        except (Challenge, Denied):
            return None
        return self._presenting(grant, {"authorization": credential})

    async def from_headers(self, headers: Mapping[str, str]) -> Visitor:
        """The visitor whose request carries ``headers`` (an API client such as ``docker
        search``). Credentials the controller refuses raise its Challenge."""
        presented = headers.get("authorization")
        if not presented or presented.strip() == EMPTY_BASIC:
            return self._anonymous()
        grant = await self.controller.authorize({"authorization": presented}, ())
        if self.token_server is not None:
            # A token of the token server's names its account; what that account may do is
            # asked again with a token for exactly those accesses (docker search's own token
            # carries none).
            return self._token_visitor(self.token_server, grant.account)
        return self._presenting(grant, {"authorization": presented})

    async def from_headers_or_anonymous(self, headers: Mapping[str, str]) -> Visitor:
        """As ``from_headers``, anonymous when the controller refuses the credentials."""
        try:
            return await self.from_headers(headers)
        except (Challenge, Denied):
            return self._anonymous()

    def _anonymous(self) -> Visitor:
        """No credentials: each question is put to the controller as anonymous pulls are."""
        if self.token_server is not None:
            return self._token_visitor(self.token_server, None)
        return self._presenting(None, {})

    def _presenting(self, grant: Grant | None, headers: Mapping[str, str]) -> Visitor:
        """A visitor who shows the controller ``headers`` as they are; ``grant``: what the
        controller answered them (None: no credentials)."""

        async def fixed(accesses: Sequence[Access]) -> Mapping[str, str]:
            return headers

        account = grant.account if grant is not None else None
        return Visitor(account, self.controller, fixed, self.controller.decider(grant))

    def _token_visitor(self, token_server: TokenServer, account: str | None) -> Visitor:
        async def minted(accesses: Sequence[Access]) -> Mapping[str, str]:
            return {"authorization": f"Bearer {token_server.access_token(account, accesses)}"}

        grant = Grant(account) if account is not None else None
        return Visitor(account, self.controller, minted, self.controller.decider(grant))
