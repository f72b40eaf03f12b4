"""The lifecycle's HTTP endpoints, extensions the API serves under ``_dockyard``.

``DELETE /v2/<name>/_dockyard/repository`` deletes the repository: the router and the access
decision treat it as any delete on the repository (it needs ``delete``), and read-only mode
refuses it before it gets here.

``GET /v2/<name>/_dockyard/usage`` answers the repository's figures from the latest usage record
(it needs ``pull`` on the repository); ``GET /v2/_dockyard/usage`` the whole record, listing the
repositories the caller's catalog would (it needs the catalog's access). Both carry the record's
``measured`` time, also as ``Last-Modified``; before any walk wrote a record they answer 404
``USAGE_UNKNOWN``. Nothing is walked per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..api.context import CATALOG_FILTER, caller_of
from ..api.responses import empty, json_response
from ..errors import ErrorCode, RegistryError
from ..storage import Storage
from .repositories import HTTP_WAIT, delete_repository
from .usage import Records

EXTENSION = "repository"
"""The extension's name: the path component after ``_dockyard``."""
USAGE_EXTENSION = "usage"


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
        try:
            await delete_repository(self._storage.driver, name, HTTP_WAIT)
        finally:
            self._storage.forget_repository(name)
        await empty(202)(scope, receive, send)


class UsageEndpoint:
    def __init__(self, storage: Storage) -> None:
        self._records = Records(storage.driver)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != scope["root_path"]:
            raise RegistryError(ErrorCode.NOT_FOUND)
        if scope["method"] not in {"GET", "HEAD"}:
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
        record = await self._records.latest()
        if record is None:
            raise RegistryError(ErrorCode.USAGE_UNKNOWN)
        name = caller_of(scope).repository
        document: Mapping[str, Any]
        if name is None:
            listed: Callable[[str], bool] | None = scope.get(CATALOG_FILTER)
            repositories = list(record.repositories.values())
            if listed is not None:
                repositories = [r for r in repositories if listed(str(r.get("name")))]
            document = {**record.document, "repositories": repositories}
        else:
            found = record.repositories.get(name)
            if found is None:
                raise RegistryError(
                    ErrorCode.NAME_UNKNOWN, {"name": name, "usage": "not in the latest record"}
                )
            document = {**found, "measured": record.document.get("measured")}
        response = json_response(document, headers=_measured_header(record.measured))
        if scope["method"] == "HEAD":  # the GET's headers, Content-Length included, no body
            response = Response(b"", 200, dict(response.headers))
        await response(scope, receive, send)


def _measured_header(measured: float | None) -> dict[str, str]:
    if measured is None:
        return {}
    return {"Last-Modified": format_datetime(datetime.fromtimestamp(measured, UTC), usegmt=True)}
