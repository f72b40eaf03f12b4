"""The lifecycle's HTTP endpoint, an extension the API serves under ``/v2/<name>/_dockyard/``.

``DELETE /v2/<name>/_dockyard/repository`` deletes the repository: the router and the access
decision treat it as any delete on the repository (it needs ``delete``), and read-only mode
refuses it before it gets here.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ..api.context import caller_of
from ..api.responses import empty
from ..errors import ErrorCode, RegistryError
from ..storage import Storage
from .repositories import HTTP_WAIT, delete_repository

EXTENSION = "repository"
"""The extension's name: the path component after ``_dockyard``."""


class RepositoryEndpoint:
    def __init__(self, storage: Storage, delete_enabled: bool) -> None:
        self._storage = storage
        self._delete_enabled = delete_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = caller_of(scope).repository
        if name is None or scope["path"] != scope["root_path"]:
            raise RegistryError(ErrorCode.NOT_FOUND)  # a registry-wide or deeper path
        if scope["method"] != "DELETE":
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": "DELETE"})
        if not self._delete_enabled:
            raise RegistryError(ErrorCode.DELETE_DISABLED)
        await delete_repository(self._storage.driver, name, HTTP_WAIT)
        await empty(202)(scope, receive, send)
