"""The notifications of one worker: queueing events for every endpoint, and the deliverers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import ASGIApp, Send

from config_reader import parse_address
from storage_drivers import StorageDriver, create_driver

from ..background import running_beside
from ..config import Config, Endpoint
from ..errors import ErrorCode
from ..observability.metrics import Metrics
from ..references import Digest, RepositoryName
from ..storage import paths
from ..storage.tags import Tags
from .deliver import Deliverer
from .events import Happened, RequestRecord, Source, event
from .layer import Notify
from .queue import Lease, Queue, StorageClock, new_writer

log = logging.getLogger("registry.notifications")

LATER_EVERY = 0.1
"""Seconds pull events wait to be queued together."""


class Notifier:
    def __init__(
        self,
        config: Config,
        storage_driver: StorageDriver,
        queue_driver: StorageDriver,
        metrics: Metrics | None,
    ) -> None:
        settings = config.notifications
        self.config = config
        self.storage_driver = storage_driver
        self.tags = Tags(storage_driver)
        self.queue_driver = queue_driver
        self.include_references = settings.include_references
        host = socket.gethostname()
        address = f"{host}:{parse_address(config.http.addr)[1]}" if config.http.net == "tcp" else host
        self.source = Source(address, str(uuid.uuid4()))
        self.endpoints = settings.endpoints
        writer = new_writer()
        self.clock = StorageClock(queue_driver, writer)
        self.queues = {
            endpoint.name: Queue(queue_driver, endpoint.name, writer, self.clock)
            for endpoint in self.endpoints
        }
        self.deliverers = [
            Deliverer(
                endpoint, self.queues[endpoint.name], Lease(queue_driver, endpoint.name, writer), metrics
            )
            for endpoint in self.endpoints
        ]
        self.pending: list[dict[str, Any]] = []
        self.pending_since = 0

    @classmethod
    def from_config(
        cls, config: Config, storage_driver: StorageDriver, metrics: Metrics | None
    ) -> Notifier | None:
        """None when no endpoint is enabled."""
        settings = config.notifications
        if not settings.endpoints:
            return None
        queue_driver = storage_driver
        if settings.directory is not None:
            queue_driver = create_driver("filesystem", {"rootdirectory": settings.directory})
        return cls(config, storage_driver, queue_driver, metrics)

    def application(self, app: ASGIApp) -> ASGIApp:
        return Notify(app, self, self.config.http.host, self.include_references)

    def _events(
        self, happened: list[Happened], request: RequestRecord, base_url: str
    ) -> list[dict[str, Any]]:
        return [event(h, request, self.source, base_url, self.include_references) for h in happened]

    async def now(self, happened: list[Happened], request: RequestRecord, base_url: str) -> bool:
        """Queue a write's events durably for every endpoint; False when that failed."""
        try:
            await self._queue(self._events(happened, request, base_url))
        except Exception:
            log.exception("queueing the events of request %s failed; answering 503", request.id)
            return False
        return True

    def later(self, happened: list[Happened], request: RequestRecord, base_url: str) -> None:
        """Queue a pull's events with the next batch."""
        if not self.pending:
            self.pending_since = self.clock.now()
        self.pending.extend(self._events(happened, request, base_url))

    async def _queue(self, events: list[dict[str, Any]], when: int | None = None) -> None:
        writes, woken = [], []
        for endpoint, deliverer in zip(self.endpoints, self.deliverers, strict=True):
            wanted = [e for e in events if _wanted(endpoint, e)]
            if wanted:
                data = json.dumps(wanted, separators=(",", ":")).encode()
                writes.append(self.queues[endpoint.name].put(data, len(wanted), when))
                woken.append(deliverer)
        await asyncio.gather(*writes)
        for deliverer in woken:  # this worker's deliverers, when they hold the lease, at once
            deliverer.wake.set()

    async def _flush(self) -> None:
        events, self.pending = self.pending, []
        if events:
            try:
                await self._queue(events, self.pending_since)
            except Exception:
                log.exception("queueing %d pull events failed; they are lost", len(events))

    async def refuse(self, send: Send) -> None:
        code, status, message = ErrorCode.UNAVAILABLE.value
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def content(self, digest: str) -> bytes | None:
        """A manifest's bytes, for its references."""
        try:
            return await self.storage_driver.get_content(paths.blob_data(Digest.parse(digest)))
        except Exception:
            return None

    async def tags_pointing_at(self, repository: str, digest: str) -> list[str]:
        try:
            tags = await self.tags.pointing_at(RepositoryName.parse(repository), Digest.parse(digest))
        except Exception:  # an unknown repository or digest: the delete fails too
            return []
        return [str(tag) for tag in tags]

    async def blob_size(self, digest: str) -> int:
        try:
            return (await self.storage_driver.stat(paths.blob_data(Digest.parse(digest)))).size
        except Exception:
            return 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the application's lifespan: the pulls' batches and one deliverer per endpoint."""

        async def flushing() -> None:
            while True:
                await asyncio.sleep(LATER_EVERY)
                await self._flush()

        try:
            async with running_beside(
                flushing(), self.clock.keep_measuring(), *(d.run() for d in self.deliverers)
            ):
                yield
        finally:
            await self._flush()
            for deliverer in self.deliverers:
                await deliverer.release()
            if self.queue_driver is not self.storage_driver:
                await self.queue_driver.close()


def _wanted(endpoint: Endpoint, event: dict[str, Any]) -> bool:
    return (
        event["action"] not in endpoint.ignored_actions
        and event["target"].get("mediaType") not in endpoint.ignored_media_types
    )
