"""Every request's path through the API: route, validate the name, authorize, handle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auth import AccessController, Challenge, Denied

from ..access import mount_source_access, required_access
from ..errors import ErrorCode, RegistryError
from ..lifecycle import http as lifecycle
from ..references import RepositoryName
from ..storage import Storage
from . import blobs, listings, manifests, uploads
from .context import Context, Settings
from .router import ALLOWED_METHODS, Route, match

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
    (Route.REPOSITORY, "DELETE"): lifecycle.delete_repository,
}
"""HEAD is served by the GET handler, which leaves the body out."""

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RegistryAPI:
    """The ``/v2/`` API as one ASGI app."""

    def __init__(
        self, storage: Storage, controller: AccessController, settings: Settings, read_only: bool
    ) -> None:
        self.storage = storage
        self.controller = controller
        self.settings = settings
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        found = match(request.scope.get("raw_path") or request.scope["path"].encode())
        if found is None:
            raise RegistryError(ErrorCode.NOT_FOUND)
        method = request.method
        if method not in ALLOWED_METHODS[found.route]:
            allow = ", ".join(sorted(ALLOWED_METHODS[found.route]))
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": allow})
        name = RepositoryName.parse(found.name) if found.name is not None else RepositoryName("")
        await self.controller.authorize(request.headers, required_access(found.route, method, found.name))
        if self.read_only and method in WRITE_METHODS:
            raise RegistryError(ErrorCode.READ_ONLY)
        handler = HANDLERS[(found.route, "GET" if method == "HEAD" else method)]
        context = Context(
            request, self.storage, self.settings, name, found.argument or "", self._pull_check(request)
        )
        return await handler(context)

    def _pull_check(self, request: Request) -> Callable[[RepositoryName], Awaitable[bool]]:
        async def may_pull(source: RepositoryName) -> bool:
            try:
                await self.controller.authorize(request.headers, [mount_source_access(source)])
            except (Challenge, Denied):
                return False
            return True

        return may_pull
