"""Access decisions counted by outcome, and the account that made each request.

The account goes into the request's context (``current_exchange``), where the access log and
the audit log read it once the response is sent; no handler is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from auth import Access, AccessController, Challenge, Denied, Grant

from .exchange import current_exchange
from .metrics import Metrics


def credentials_kind(headers: Mapping[str, str]) -> str:
    scheme = headers.get("authorization", "").partition(" ")[0].lower()
    return scheme if scheme in {"basic", "bearer"} else "none" if not scheme else "other"


class ObservedAccessController(AccessController):
    def __init__(self, controller: AccessController, metrics: Metrics | None) -> None:
        self.controller = controller
        self._metrics = metrics

    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        kind = credentials_kind(headers) if self._metrics is not None else ""
        try:
            grant = await self.controller.authorize(headers, required)
        except Challenge:
            self._count(kind, "challenged")
            raise
        except Denied:
            self._count(kind, "denied")
            raise
        self._count(kind, "granted")
        exchange = current_exchange.get()
        if exchange is not None and grant.account is not None:
            exchange.account = grant.account
        return grant

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.add(self._metrics.auth, kind, outcome)

    def catalog_filter(self, grant: Grant) -> Callable[[str], bool] | None:
        return self.controller.catalog_filter(grant)

    async def close(self) -> None:
        await self.controller.close()
