"""Access decisions counted by outcome: credentials presented, and granted, challenged or denied."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from auth import Access, AccessController, Challenge, Denied, Grant

from .metrics import Metrics


def credentials_kind(headers: Mapping[str, str]) -> str:
    # Looked for first: a missing key costs a raised KeyError in Mapping.get.
    authorization = headers["authorization"] if "authorization" in headers else ""  # noqa: SIM401
    scheme = authorization.partition(" ")[0].lower()
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
        return grant

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.add(self._metrics.auth, kind, outcome)

    def catalog_filter(self, grant: Grant) -> Callable[[str], bool] | None:
        return self.controller.catalog_filter(grant)

    def decider(self, grant: Grant | None) -> Callable[[Access], bool] | None:
        return self.controller.decider(grant)

    async def close(self) -> None:
        await self.controller.close()
