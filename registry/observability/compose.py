"""The observability parts built from the configuration, for ``create_app`` to compose.

``Observability.from_config`` builds the parts; the application composes them in three places:
the storage driver and the access controller are wrapped when metrics are on (storage timings,
auth outcomes), and the public application is wrapped once (``Observe``: request metrics, the
access log, the request id, the events the audit log listens to), beside the debug listener.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp

from auth import AccessController
from config_reader import parse_address
from storage_drivers import StorageDriver

from ..background import running_beside
from ..config import Config
from ..storage.uploads import SessionWatch, Uploads
from .access import ObservedAccessController
from .debug import DebugApp
from .events import AuditLog, EventStream
from .exchange import Observe
from .health import StorageHealth
from .metrics import Metrics
from .storage import ObservedDriver
from .tally import FLUSH_INTERVAL


@dataclass
class Observability:
    config: Config
    metrics: Metrics | None
    events: EventStream
    health: StorageHealth | None = None

    @classmethod
    def from_config(cls, config: Config) -> Observability:
        metrics = Metrics() if config.http.debug.prometheus else None
        events = EventStream()
        events.listen(AuditLog(config.log.audit_path))
        return cls(config, metrics, events)

    def driver(self, driver: StorageDriver) -> StorageDriver:
        return driver if self.metrics is None else ObservedDriver(driver, self.metrics)

    def count_uploads(self, uploads: Uploads) -> None:
        """Keep ``registry_uploads_in_progress`` from the upload sessions storage opens and closes."""
        metrics = self.metrics
        if metrics is not None:

            def change(step: int) -> None:
                metrics.add(metrics.uploads, amount=step)

            uploads.watch = SessionWatch(metrics.since, change)

    def controller(self, controller: AccessController) -> AccessController:
        return controller if self.metrics is None else ObservedAccessController(controller, self.metrics)

    def watch_storage(self, name: str, check: Callable[[], Awaitable[None]]) -> StorageHealth | None:
        """The periodic storage check ``health.storagedriver`` asks for, or None."""
        settings = self.config.health
        if settings.storage_check:
            self.health = StorageHealth(name, check, settings.interval, settings.threshold)
        return self.health

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the application's lifespan: the storage check and the metrics' flushes."""
        async with contextlib.AsyncExitStack() as stack:
            if self.health is not None:
                await stack.enter_async_context(self.health.running())
            if self.metrics is not None:
                await stack.enter_async_context(_flushing(self.metrics))
            yield

    def application(
        self, public: ASGIApp, fixed_routes: Mapping[str, str], mounted_routes: Mapping[str, str]
    ) -> ASGIApp:
        """``public`` observed, and the debug listener beside it when configured."""
        config = self.config
        debug = config.http.debug
        debug_app = None
        if debug.addr is not None:
            _, port = parse_address(debug.addr)
            debug_app = (port, DebugApp(self.metrics, debug.prometheus_path, self.health))
        return Observe(
            public,
            metrics=self.metrics,
            events=self.events,
            access_logged=config.log.access_log,
            trusted_proxies=config.http.trusted_proxies,
            fixed_routes=fixed_routes,
            mounted_routes=mounted_routes,
            debug=debug_app,
        )


@contextlib.asynccontextmanager
async def _flushing(metrics: Metrics) -> AsyncIterator[None]:
    async def forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            metrics.flush()

    try:
        async with running_beside(forever()):
            yield
    finally:
        metrics.flush()  # a worker stopping keeps every figure it counted
