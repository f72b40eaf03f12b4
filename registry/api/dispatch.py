"""Every request's path through the API: route, validate the name, authorize, handle (or hand
the request to the extension it names)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import AccessController

from ..access import required_access
from ..errors import ErrorCode, RegistryError
from ..references import RepositoryName
from ..storage import Storage
from . import blobs, listings, manifests, uploads
from .context import CALLER, CATALOG_FILTER, Caller, Context, Settings
from .router import ACTIONS, EXTENSION_ROUTES, Route, route_of

Handler = Callable[[Context], Awaitable[Response]]

HANDLERS: dict[tuple[Route, str], Handler] = {
    (Route.BASE, "GET"): listings.base,
    (Route.CATALOG, "GET"): listings.catalog,
    (Route.TAGS, "GET"): listings.list_tags,
    (Route.REFERRERS, "GET"): listings.referrers,
    (Route.MANIFEST, "GET"): manifests.get_manifest,
    (Route.MANIFEST, "PUT"): manifests.put_manifest,
    (Route.MANIFEST, "DELETE"): manifests.delete_manifest,
    (Route.BLOB, "GET"): blobs.get_blob,
    (Route.BLOB, "DELETE"): blobs.delete_blob,
    (Route.UPLOAD_START, "POST"): uploads.start_upload,
    (Route.UPLOAD, "GET"): uploads.upload_status,
    (Route.UPLOAD, "PATCH"): uploads.append_chunk,
    (Route.UPLOAD, "PUT"): uploads.finish_upload,
    (Route.UPLOAD, "DELETE"): uploads.cancel_upload,
}
"""HEAD is served by the GET handler, which leaves the body out."""

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NO_NAME = RepositoryName("")
"""The name registry-wide endpoints' handlers get."""

MirrorHandlers = Callable[[Route, str, RepositoryName], Handler | None]
"""The handler for a repository that mirrors another registry (None: the usual one)."""


class RegistryAPI:
    """The ``/v2/`` API as one ASGI app. ``extensions`` maps names to the applications that serve
    ``/v2/_dockyard/<name>/...`` and ``/v2/<repository>/_dockyard/<name>/...``; each gets
    requests the access decision granted, their ``Caller`` in the scope and ``root_path``
    ending with its name."""

    def __init__(
        self,
        storage: Storage,
        controller: AccessController,
        settings: Settings,
        read_only: bool,
        extensions: Mapping[str, ASGIApp] | None = None,
        *,
        mirror_handlers: MirrorHandlers | None = None,
    ) -> None:
        self.storage = storage
        self.mirror_handlers = mirror_handlers
        self.controller = controller
        self.settings = settings
        self.read_only = read_only
        self.extensions = dict(extensions or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        found = route_of(scope)
        if found is None:
            raise RegistryError(ErrorCode.NOT_FOUND)
        method = request.method
        actions = ACTIONS[found.route]
        action = actions.get(method)
        if action is None:
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": ", ".join(sorted(actions))})
        name = RepositoryName.parse(found.name) if found.name is not None else None
        target: str | None = name
        extension_name, extension = "", None
        if found.route in EXTENSION_ROUTES:
            extension_name, extension = self._extension(found.argument)
            if found.route is Route.REGISTRY_EXTENSION:
                target = extension_name
        grant = await self.controller.authorize(request.headers, required_access(action, target))
        if self.read_only and method in WRITE_METHODS:
            raise RegistryError(ErrorCode.READ_ONLY)
        caller = Caller(grant.account, found.route, name)
        scope[CALLER] = caller
        if extension is not None:
            if found.route is Route.REGISTRY_EXTENSION:
                scope[CATALOG_FILTER] = self.controller.catalog_filter(grant)
            await extension(_extension_scope(scope, extension_name), receive, send)
            return
        handler = HANDLERS[(found.route, "GET" if method == "HEAD" else method)]
        if self.mirror_handlers is not None and name is not None:
            handler = self.mirror_handlers(found.route, method, name) or handler
        context = Context(
            request,
            self.storage,
            self.settings,
            name or _NO_NAME,
            found.argument or "",
            caller,
            self.controller,
            self.controller.catalog_filter(grant) if found.route is Route.CATALOG else None,
        )
        response = await handler(context)
        await response(scope, receive, send)

    def _extension(self, argument: str | None) -> tuple[str, ASGIApp]:
        """The extension an extension path names (its name, its app); 404 when there is none."""
        extension_name = (argument or "").partition("/")[0]
        extension = self.extensions.get(extension_name)
        if extension is None:
            raise RegistryError(ErrorCode.NOT_FOUND)
        return extension_name, extension


def _extension_scope(scope: Scope, extension_name: str) -> Scope:
    """The scope an extension sees: ``root_path`` up to and with its name, as for a mounted
    application, so it routes on what follows."""
    path: str = scope["path"]
    marker = f"/_dockyard/{extension_name}"
    end = path.find(marker) + len(marker) if marker in path else len(path)
    return {**scope, "root_path": path[:end]}
