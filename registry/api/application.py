"""The registry's ASGI application: lifespan, a few fixed paths, sub-applications mounted under
path prefixes, the API, and one error boundary.

Every response passes one place that adds the common headers and turns every
error into the spec's error JSON; an unexpected exception is logged once with
its traceback and answered 500 ``UNKNOWN``, a full or failing storage is answered
503 and logged once per incident (``incidents``). This lean stack replaces a general
router and its middleware: most requests are tiny, and the per-request path is
what the registry's throughput is made of.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth import Challenge, Denied
from storage_drivers import StorageError

from ..errors import ErrorCode, RegistryError
from .incidents import StorageIncidents
from .responses import error_response

log = logging.getLogger("registry")

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
"""On every response, errors included: what Docker clients check first."""


def as_registry_error(exc: Exception, incidents: StorageIncidents) -> RegistryError | None:
    """The API error an exception is answered with; None for an unexpected one."""
    if isinstance(exc, StorageError):
        return incidents.refuse(exc)
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, Challenge):
        return RegistryError(ErrorCode.UNAUTHORIZED, exc.detail, {"WWW-Authenticate": exc.www_authenticate})
    if isinstance(exc, Denied):
        return RegistryError(ErrorCode.DENIED, exc.detail)
    if isinstance(exc, ClientDisconnect):
        return RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, {"reason": "client disconnected"})
    return None


class Application:
    """``routes`` maps exact paths (health checks, the token server) to their apps; ``mounts`` maps
    path prefixes (``/ui``) to sub-applications, which get the path itself and every path below
    it, with the prefix added to ``root_path``; every other path goes to ``api``. ``lifespan``
    runs around the server's life."""

    def __init__(
        self,
        api: ASGIApp,
        routes: Mapping[str, ASGIApp],
        lifespan: Callable[[], AbstractAsyncContextManager[None]],
        headers: Mapping[str, list[str]],
        incidents: StorageIncidents,
        *,
        mounts: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.api = api
        self.incidents = incidents
        self.routes = dict(routes)
        self.mounts = {prefix.rstrip("/"): app for prefix, app in (mounts or {}).items()}
        for prefix in self.mounts:
            # Below /v2 a mount would take requests from the API's access decision.
            if not prefix.startswith("/") or prefix == "/v2" or prefix.startswith("/v2/"):
                raise ValueError(f"a mount prefix must name a path outside /v2, like /ui, not {prefix!r}")
        self._mount_prefixes = tuple(self.mounts)
        self.lifespan = lifespan
        self.headers = [API_VERSION] + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, values in headers.items()
            for value in values
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        extra = self.headers

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        path = scope["path"]
        route = self.routes.get(path)
        try:
            mount = self._mount_for(path) if self._mount_prefixes else None
            if mount is not None:
                prefix, app = mount
                mounted_scope = {**scope, "root_path": scope.get("root_path", "") + prefix}
                await app(mounted_scope, receive, send_with_headers)
            else:
                await (route or self.api)(scope, receive, send_with_headers)
            if status < 400:
                # /v2/ answers without storage and a mounted application need not touch it:
                # neither ends an incident. The other routes report on their own.
                storage_used = mount is None and route is None and path.rstrip("/") != "/v2"
                self.incidents.succeeded(scope["method"], storage_used)
        except Exception as exc:
            error = as_registry_error(exc, self.incidents)
            if error is None:
                log.exception("unexpected error on %s %s", scope["method"], scope["path"])
                error = RegistryError(ErrorCode.UNKNOWN)
            if status:
                raise  # the response is under way: only dropping the connection can signal it
            await error_response(error, scope["method"])(scope, receive, send_with_headers)

    def _mount_for(self, path: str) -> tuple[str, ASGIApp] | None:
        if path.startswith(self._mount_prefixes):
            for prefix, app in self.mounts.items():
                if path == prefix or path.startswith(prefix + "/"):  # "/uix" is not below "/ui"
                    return prefix, app
        return None

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        context = self.lifespan()
        await receive()  # lifespan.startup
        try:
            await context.__aenter__()
        except Exception as exc:
            log.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await context.__aexit__(None, None, None)
        await send({"type": "lifespan.shutdown.complete"})
