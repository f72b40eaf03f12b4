"""The lifecycle's HTTP endpoints, under ``/v2/<name>/_dockyard/`` (routed and authorized as the API is)."""

from __future__ import annotations

from starlette.responses import Response

from ..api.context import Context
from ..api.responses import empty
from ..errors import ErrorCode, RegistryError
from .repositories import HTTP_WAIT
from .repositories import delete_repository as delete_stored_repository


async def delete_repository(ctx: Context) -> Response:
    """``DELETE /v2/<name>/_dockyard/repository``: needs ``delete`` on the repository."""
    if not ctx.settings.delete_enabled:
        raise RegistryError(ErrorCode.DELETE_DISABLED)
    await delete_stored_repository(ctx.storage.driver, ctx.name, HTTP_WAIT)
    return empty(202)
