"""Access decisions counted by outcome: credentials presented, and granted, challenged or denied."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from starlette.datastructures import Headers

from auth import Access, AccessController, Challenge, Denied, Grant

from .metrics import Metrics
from .tally import Count

_KINDS = {b"basic": "basic", b"bearer": "bearer", b"": "none"}


def credentials_kind(headers: Mapping[str, str]) -> str:
    """``basic``, ``bearer``, ``none`` or ``other``: the scheme of the ``Authorization`` header."""
    if isinstance(headers, Headers):  # the API's: one pass over the raw pairs, nothing decoded
        for name, value in headers.raw:
            if name == b"authorization":
                return _KINDS.get(value.partition(b" ")[0].lower(), "other")
        return "none"
    scheme = headers.get("authorization", "").partition(" ")[0].lower().encode("latin-1")
    return _KINDS.get(scheme, "other")


class ObservedAccessController(AccessController):
    def __init__(self, controller: AccessController, metrics: Metrics) -> None:
        self.controller = controller
        self._metrics = metrics
        self._granted: dict[str, Count] = {}
        """By credentials' kind: the slot every granted request adds to, made the first time."""

    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        # credentials_kind's pass over the API's headers, written out: a call less per request.
        if isinstance(headers, Headers):
            kind = "none"
            for name, value in headers.raw:
                if name == b"authorization":
                    kind = _KINDS.get(value.partition(b" ")[0].lower(), "other")
                    break
        else:
            kind = credentials_kind(headers)
        try:
            grant = await self.controller.authorize(headers, required)
        except Challenge:
            self._count(kind, "challenged")
            raise
        except Denied:
            self._count(kind, "denied")
            raise
        try:
            self._granted[kind].value += 1
        except KeyError:  # the kind's first grant: its slot, made once
            self._granted[kind] = self._metrics.count(self._metrics.auth, kind, "granted")
            self._granted[kind].value += 1
        return grant

    def _count(self, kind: str, outcome: str) -> None:
        """A refusal, rarer: its slot is found by its labels."""
        metrics = self._metrics
        metrics.add(metrics.auth, kind, outcome)

    def catalog_filter(self, grant: Grant) -> Callable[[str], bool] | None:
        return self.controller.catalog_filter(grant)

    def decider(self, grant: Grant | None) -> Callable[[Access], bool] | None:
        return self.controller.decider(grant)

    async def close(self) -> None:
        await self.controller.close()
