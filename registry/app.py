"""Building the ASGI application from a configuration. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from auth import AccessController, AllowAll, Challenge, Denied, create_access_controller, create_token_server
from storage_drivers import StorageUnavailable, create_driver

from .api.context import Settings
from .api.dispatch import RegistryAPI
from .api.responses import CommonHeaders, UnexpectedErrors, error_response, json_response
from .config import CONFIG_ENV, Config, load_config
from .errors import ErrorCode, RegistryError
from .storage import ManifestPolicy, Storage

log = logging.getLogger("registry")

RETRY_AFTER_SECONDS = "5"


def manifest_policy(config: Config) -> ManifestPolicy:
    validation = config.validation
    return ManifestPolicy(
        urls_allow=tuple(re.compile(p) for p in validation.urls_allow),
        urls_deny=tuple(re.compile(p) for p in validation.urls_deny),
        index_children=validation.index_children,  # type: ignore[arg-type]
        index_platforms=validation.index_platforms,
    )


def create_app(config: Config) -> ASGIApp:
    driver = create_driver(config.storage.driver, config.storage.parameters)
    storage = Storage(driver, manifest_policy(config))
    controller = create_access_controller(config.auth)
    settings = Settings(
        delete_enabled=config.storage.delete_enabled,
        redirect=config.storage.redirect,
        catalog_max_entries=config.catalog_max_entries,
        anonymous_mount=isinstance(controller, AllowAll),
        external_url=config.http.host,
        relative_urls=config.http.relative_urls,
    )
    api = RegistryAPI(storage, controller, settings, config.storage.read_only)

    async def root(request: Request) -> Response:
        return json_response({})

    async def ready(request: Request) -> Response:
        try:
            await storage.check()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return json_response({"storage": "unavailable"}, 503)
        return json_response({"storage": "ok"})

    routes = [Route("/", root, methods=["GET", "HEAD"]), Route("/readyz", ready)]
    token_server = create_token_server(config.tokenserver, auth=config.auth, embedded=True)
    if token_server is not None:
        routes.append(Route(token_server.settings.path, token_server, methods=["GET", "POST"]))
    app = Starlette(
        routes=[*routes, Mount("", app=api)],
        exception_handlers={
            RegistryError: _registry_error,
            Challenge: _challenge,
            Denied: _denied,
            StorageUnavailable: _unavailable,
            ClientDisconnect: _client_gone,
            HTTPException: _http_exception,
        },
        middleware=[Middleware(UnexpectedErrors)],
        lifespan=lambda app: _lifespan(config, storage, controller),
    )
    return CommonHeaders(app, config.http.headers)


def app_from_environment() -> ASGIApp:
    """The uvicorn factory each worker process calls."""
    path = os.environ.get(CONFIG_ENV) or None
    return create_app(load_config(path))


@contextlib.asynccontextmanager
async def _lifespan(config: Config, storage: Storage, controller: AccessController) -> AsyncIterator[None]:
    purging = config.storage.upload_purging
    task = None
    if purging.enabled and not config.storage.read_only:
        task = asyncio.create_task(
            _purge_uploads_forever(storage, purging.age, purging.interval, purging.dry_run)
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await controller.close()
        await storage.driver.close()


async def _purge_uploads_forever(storage: Storage, age: float, interval: float, dry_run: bool) -> None:
    """Every worker purges; deletes are idempotent, and the random start spreads the work."""
    await asyncio.sleep(random.uniform(0, min(interval, 60.0)))  # noqa: S311 - jitter only
    while True:
        try:
            purged = await storage.purge_uploads(age, dry_run)
            if purged:
                verb = "would purge" if dry_run else "purged"
                log.info("%s %d abandoned uploads", verb, len(purged))
        except Exception:
            log.exception("upload purging failed; retrying at the next interval")
        await asyncio.sleep(interval)


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return error_response(exc, request.method)


async def _challenge(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Challenge)
    error = RegistryError(ErrorCode.UNAUTHORIZED, exc.detail, {"WWW-Authenticate": exc.www_authenticate})
    return error_response(error, request.method)


async def _denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Denied)
    return error_response(RegistryError(ErrorCode.DENIED, exc.detail), request.method)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("storage unavailable: %s", exc)
    error = RegistryError(ErrorCode.UNAVAILABLE, headers={"Retry-After": RETRY_AFTER_SECONDS})
    return error_response(error, request.method)


async def _client_gone(request: Request, exc: Exception) -> Response:
    return error_response(RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, {"reason": "client disconnected"}))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = ErrorCode.METHOD_NOT_ALLOWED if exc.status_code == 405 else ErrorCode.NOT_FOUND
    return error_response(RegistryError(code), request.method)
