"""The web interface (mounted at ``/ui``) and Docker's v1 search endpoint (``/v1/search``).

Both answer from the storage services and decide every access with the registry's access
controller (``visitor``): the interface shows only what the visitor may pull and offers deletes
only where the visitor may delete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp

from auth import AccessController

from ..api.incidents import StorageIncidents
from ..storage import Storage
from .names import RepositoryIndex
from .pages import Interface, create_pages
from .search import create_search
from .security import secured
from .session import Sealer
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
        interface = Interface(storage, index, gate, Sealer(secret), delete_enabled, external_url, incidents)
        self.pages: ASGIApp = secured(create_pages(interface))
        """Mounted at ``PREFIX``."""
        self.search: ASGIApp = create_search(storage, index, gate)
        """Served at ``SEARCH_PATH``."""
