"""What a handler gets: the request, the validated repository name, who asked, and the registry's
parts. What the access decision established about a request also travels in its ASGI scope, for
what wraps the API or is mounted beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from starlette.requests import Request
from starlette.types import Scope

from auth import AccessController, Challenge, Denied

from ..access import Action, required_access
from ..references import RepositoryName
from ..storage import Storage

CALLER = "dockyard.caller"
"""The ASGI scope key under which a granted request carries its ``Caller``."""
REQUEST_ID = "dockyard.request_id"
"""The scope key under which the observing layer gives what it wraps the request's id."""
CATALOG_FILTER = "dockyard.catalog_filter"
"""The scope key under which a registry-wide extension gets the repositories its caller's catalog
lists (``AccessController.catalog_filter``; None: every one)."""


class Caller(NamedTuple):  # a tuple: built on every request, and cheaper than a frozen dataclass
    """Who asked, and through which route: what log lines, metrics, events and audit records
    name. Set once the access decision granted the request."""

    account: str | None
    """None when anonymous (no access control, or access granted without credentials)."""
    route: str
    """The route's name (a ``Route`` value, or a mounted application's name): one of a fixed few,
    fit for a metric label."""
    repository: RepositoryName | None = None
    """The repository the request is about; None for registry-wide routes."""


def caller_of(scope: Scope) -> Caller:
    """The caller of a request the registry granted (for sub-applications and middleware)."""
    caller: Caller = scope[CALLER]
    return caller


@dataclass(frozen=True, slots=True)
class Settings:
    delete_enabled: bool
    redirect: bool
    catalog_max_entries: int
    anonymous_mount: bool
    """Mount by digest alone (no ``from``) is allowed only when access is not controlled."""
    external_url: str | None
    relative_urls: bool
    accel_redirect: str | None = None
    """nginx serves blob GETs from this internal location (``http.accelredirect``)."""


class Context(NamedTuple):  # a tuple, as ``Caller``: one per request, built in a fifth of the time
    request: Request
    storage: Storage
    settings: Settings
    name: RepositoryName
    """Empty for the registry-wide endpoints (``/v2/``, the catalog)."""
    argument: str
    """The reference, digest or upload id from the path, not yet validated."""
    caller: Caller
    controller: AccessController
    """Asked again when a handler needs more than the route's access (a mount's source)."""
    catalog_filter: Callable[[str], bool] | None = None
    """The repositories the caller's catalog lists (None: every one)."""

    async def may_pull(self, source: RepositoryName) -> bool:
        """Whether the caller may pull from another repository (the source of a mount)."""
        try:
            await self.controller.authorize(self.request.headers, required_access(Action.PULL, source))
        except (Challenge, Denied):
            return False
        return True

    def url(self, path: str) -> str:
        """An absolute (or, with http.relativeurls, relative) URL for an API path."""
        if self.settings.relative_urls:
            return path
        if self.settings.external_url:
            return self.settings.external_url + path
        request = self.request
        host = request.headers.get("host")
        if host is None:
            url = request.url
            return f"{url.scheme}://{url.hostname}:{url.port}{path}"
        # The scheme as ``request.url`` gives it, without parsing a whole URL on every push.
        return f"{request.scope.get('scheme', 'http')}://{host}{path}"
