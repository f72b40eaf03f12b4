"""``health.storagedriver``: the storage checked every ``interval``; ``threshold`` failures in a
row make the registry unhealthy, one success makes it healthy again, as in Distribution.

Each worker checks on its own (the state is the worker's view of the storage, not shared
request state); all of them reach the same storage and so agree within one interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..background import running_beside

log = logging.getLogger("registry")


class StorageHealth:
    def __init__(
        self, name: str, check: Callable[[], Awaitable[None]], interval: float, threshold: int
    ) -> None:
        self.name = f"storagedriver_{name}"
        """The check's name in /debug/health, as Distribution names it."""
        self.check = check
        self.interval = interval
        self.threshold = threshold
        self.failures = 0
        self.error = ""

    @property
    def healthy(self) -> bool:
        return self.failures < self.threshold

    def failing(self) -> dict[str, str]:
        """Distribution's /debug/health body: each failing check and why."""
        return {} if self.healthy else {self.name: self.error}

    async def run_once(self) -> None:
        try:
            await self.check()
        except Exception as exc:
            self.failures += 1
            self.error = str(exc) or type(exc).__name__
            if self.failures == self.threshold:
                log.error("storage health check failed %d times: %s", self.failures, self.error)
            return
        if not self.healthy:
            log.info("storage health check passes again")
        self.failures = 0
        self.error = ""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async def forever() -> None:
            while True:
                await self.run_once()
                await asyncio.sleep(self.interval)

        async with running_beside(forever()):
            yield
