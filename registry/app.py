"""Building the ASGI application from a configuration. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import AccessController, AllowAll, create_access_controller, create_token_server
from storage_drivers import create_driver

from .api.application import Application
from .api.context import Settings
from .api.dispatch import RegistryAPI
from .api.responses import json_response
from .config import CONFIG_ENV, Config, load_config
from .errors import ErrorCode, RegistryError
from .observability.compose import Observability
from .observability.health import StorageHealth
from .storage import ManifestPolicy, Storage

log = logging.getLogger("registry")


def manifest_policy(config: Config) -> ManifestPolicy:
    validation = config.validation
    return ManifestPolicy(
        check_references=validation.check_references,
        urls_allow=tuple(re.compile(p) for p in validation.urls_allow),
        urls_deny=tuple(re.compile(p) for p in validation.urls_deny),
        index_children=validation.index_children,  # type: ignore[arg-type]
        index_platforms=validation.index_platforms,
    )


def create_app(config: Config) -> ASGIApp:
    observability = Observability.from_config(config)
    driver = observability.driver(create_driver(config.storage.driver, config.storage.parameters))
    storage = Storage(driver, manifest_policy(config))
    health = observability.watch_storage(config.storage.driver, storage.check)
    token_server = create_token_server(config.tokenserver, auth=config.auth, embedded=True)
    controller = create_access_controller(config.auth, token_server)
    anonymous_mount = isinstance(controller, AllowAll)
    controller = observability.controller(controller)
    settings = Settings(
        delete_enabled=config.storage.delete_enabled,
        redirect=config.storage.redirect,
        catalog_max_entries=config.catalog_max_entries,
        anonymous_mount=anonymous_mount,
        external_url=config.http.host,
        relative_urls=config.http.relative_urls,
    )

    async def root() -> Response:
        return json_response({})

    async def ready() -> Response:
        if health is not None:  # the periodic check decides, with its threshold
            return json_response(
                {"storage": "ok" if health.healthy else "unavailable"}, 200 if health.healthy else 503
            )
        try:
            await storage.check()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return json_response({"storage": "unavailable"}, 503)
        return json_response({"storage": "ok"})

    routes: dict[str, ASGIApp] = {"/": _read_only_endpoint(root), "/readyz": _read_only_endpoint(ready)}
    route_names = {"/": "health", "/readyz": "health"}
    if token_server is not None:
        routes[token_server.settings.path] = token_server
        route_names[token_server.settings.path] = "token"
    api: ASGIApp = RegistryAPI(storage, controller, settings, config.storage.read_only)
    if health is not None:
        api, routes = _gated(api, health), {path: _gated(app, health) for path, app in routes.items()}
    application = Application(
        api=api,
        routes=routes,
        lifespan=lambda: _lifespan(config, storage, controller, observability),
        headers=config.http.headers,
    )
    return observability.application(application, route_names)


def _gated(app: ASGIApp, health: StorageHealth) -> ASGIApp:
    """While the storage check fails, every request is answered 503, as Distribution does."""

    async def gated(scope: Scope, receive: Receive, send: Send) -> None:
        if not health.healthy:
            raise RegistryError(
                ErrorCode.UNAVAILABLE, "health check failed: please see /debug/health", {"Retry-After": "5"}
            )
        await app(scope, receive, send)

    return gated


def _read_only_endpoint(handler: Callable[[], Awaitable[Response]]) -> ASGIApp:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in {"GET", "HEAD"}:
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
        await (await handler())(scope, receive, send)

    return endpoint


def app_from_environment() -> ASGIApp:
    """The uvicorn factory each worker process calls."""
    path = os.environ.get(CONFIG_ENV) or None
    return create_app(load_config(path))


@contextlib.asynccontextmanager
async def _lifespan(
    config: Config, storage: Storage, controller: AccessController, observability: Observability
) -> AsyncIterator[None]:
    purging = config.storage.upload_purging
    task = None
    if purging.enabled and not config.storage.read_only:
        task = asyncio.create_task(
            _purge_uploads_forever(storage, purging.age, purging.interval, purging.dry_run)
        )
    try:
        async with observability.running():
            yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await controller.close()
        await storage.driver.close()


async def _purge_uploads_forever(storage: Storage, age: float, interval: float, dry_run: bool) -> None:
    """Every worker purges; deletes are idempotent, and a random start within the first hour (as
    Distribution does) keeps a fresh start, or many workers at once, from walking storage together."""
    await asyncio.sleep(random.uniform(0, min(interval, 3600.0)))  # noqa: S311 - jitter only
    while True:
        try:
            purged = await storage.purge_uploads(age, dry_run)
            if purged:
                verb = "would purge" if dry_run else "purged"
                log.info("%s %d abandoned uploads", verb, len(purged))
        except Exception:
            log.exception("upload purging failed; retrying at the next interval")
        await asyncio.sleep(interval)
