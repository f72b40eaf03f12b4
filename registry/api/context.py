"""What a handler gets: the request, the validated repository name, and the registry's parts."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from auth import AccessController, Challenge, Denied

from ..access import Action, required_access
from ..references import RepositoryName
from ..storage import Storage


@dataclass(frozen=True, slots=True)
class Settings:
    delete_enabled: bool
    redirect: bool
    catalog_max_entries: int
    anonymous_mount: bool
    """Mount by digest alone (no ``from``) is allowed only when access is not controlled."""
    external_url: str | None
    relative_urls: bool


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    storage: Storage
    settings: Settings
    name: RepositoryName
    """Empty for the registry-wide endpoints (``/v2/``, the catalog)."""
    argument: str
    """The reference, digest or upload id from the path, not yet validated."""
    controller: AccessController
    """Asked again when a handler needs more than the route's access (a mount's source)."""

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
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        return f"{request.url.scheme}://{host}{path}"
