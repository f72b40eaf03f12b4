"""The web interface (mounted at ``/ui``) and Docker's v1 search endpoint (``/v1/search``).

Both answer from the storage services and decide every access with the registry's access
controller (``visitor``): the interface shows only what the visitor may pull and offers deletes
only where the visitor may delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from auth import AccessController
from offload import to_thread

from ..api.incidents import StorageIncidents
from ..storage import Storage
from .names import RepositoryIndex
from .search import create_search
from .security import secured
from .visitor import Gate

if TYPE_CHECKING:
    from auth import TokenServer


__all__ = ["PREFIX", "SEARCH_PATH", "WebInterface"]

PREFIX = "/ui"
SEARCH_PATH = "/v1/search"


class WebInterface:
    """The interface's two applications over one registry's storage and access controller."""

    def __init__(
        self,
        storage: Storage,
        controller: AccessController,
        token_server: TokenServer | None,
        *,
        secret: str,
        delete_enabled: bool,
        read_only: bool,
        external_url: str | None,
        incidents: StorageIncidents,
    ) -> None:
        """``delete_enabled``: deletes are enabled and the storage is not read-only."""
        gate = Gate(controller, token_server)
        index = RepositoryIndex(storage, shares=not read_only)

        def create() -> ASGIApp:
            # The pages' templates (jinja2) and session cookies (cryptography) cost a worker
            # megabytes; most workers of a registry never serve a page.
            from .pages import Interface, create_pages  # noqa: PLC0415
            from .session import Sealer  # noqa: PLC0415

            sealer = Sealer(secret)
            interface = Interface(storage, index, gate, sealer, delete_enabled, external_url, incidents)
            return secured(create_pages(interface))

        self.pages: ASGIApp = BuiltWhenFirstUsed(create)
        """Mounted at ``PREFIX``."""
        self.search: ASGIApp = create_search(storage, index, gate)
        """Served at ``SEARCH_PATH``."""


class BuiltWhenFirstUsed:
    """The application ``create`` makes, made at its first request (in each worker), in a
    thread: its imports take a moment that other requests need not wait for."""

    def __init__(self, create: Callable[[], ASGIApp]) -> None:
        self._create = create
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = await to_thread(self._create)
        await self._app(scope, receive, send)
