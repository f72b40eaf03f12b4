"""Building the ASGI application from a configuration. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import AccessController, AllowAll, create_access_controller, create_token_server
from storage_drivers import StorageDriver, StorageError, create_driver

from .access import Action, required_access
from .api.application import Application
from .api.context import CALLER, Caller, Settings
from .api.dispatch import RegistryAPI
from .api.incidents import Condition, StorageIncidents
from .api.responses import json_response
from .background import one_round, running_beside
from .config import CONFIG_ENV, SECRET_ENV, Config, load_config
from .errors import ErrorCode, RegistryError
from .lifecycle.guard import PushGuard
from .lifecycle.http import EXTENSION as REPOSITORY_EXTENSION
from .lifecycle.http import USAGE_EXTENSION, RepositoryEndpoint, UsageEndpoint
from .lifecycle.records import PullRecorder
from .lifecycle.schedule import collect_forever
from .observability.compose import Observability
from .observability.health import StorageHealth
from .storage import DescriptorCache, ManifestPolicy, Storage, Wrappers
from .ui import PREFIX as UI_PREFIX
from .ui import SEARCH_PATH, WebInterface

if TYPE_CHECKING:
    from .notifications import Notifier
    from .proxy import Proxy

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


def create_app(
    config: Config,
    *,
    driver: StorageDriver | None = None,
    wrappers: Wrappers | None = None,
    mounts: Mapping[str, ASGIApp] | None = None,
    extensions: Mapping[str, ASGIApp] | None = None,
) -> ASGIApp:
    """The registry for ``config``, assembled from parts.

    ``driver`` stores the content instead of the driver the configuration names; the registry
    closes it at shutdown. ``wrappers`` wrap or replace storage services (``Wrappers``).
    ``mounts`` maps path prefixes (``/docs``) to sub-applications and ``extensions`` maps names
    to the applications serving ``/v2/_dockyard/<name>/...`` and
    ``/v2/<repository>/_dockyard/<name>/...``. Both get only requests from callers the access
    controller accepts (extensions: with the access their route needs), with the ``Caller``
    under ``registry.api.context.CALLER`` in the scope. The web interface (``/ui``) and
    ``/v1/search`` are the registry's own and put every access question to the controller
    themselves: their visitors may be anonymous.
    """
    observability = Observability.from_config(config)
    if driver is None:
        driver = create_driver(config.storage.driver, config.storage.parameters)
    measured = observability.driver(driver)
    cache = config.storage.descriptor_cache
    descriptors = DescriptorCache(cache.size, cache.expiry) if cache is not None else None
    storage = Storage(measured, PushGuard(measured), manifest_policy(config), wrappers, descriptors)
    notifier = _notifier(config, storage.driver, observability)
    observability.count_uploads(storage.uploads)
    health = observability.watch_storage(driver.name, storage.check)
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
        accel_redirect=config.http.accel_redirect,
    )

    incidents = StorageIncidents()
    interface = WebInterface(
        storage,
        controller,
        token_server,
        # Workers and replicas must share it to open each other's session cookies.
        secret=config.http.secret or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32),
        delete_enabled=config.storage.delete_enabled and not config.storage.read_only,
        read_only=config.storage.read_only,
        external_url=config.http.host,
        incidents=incidents,
    )

    async def root(headers: Headers) -> Response:
        if "text/html" in headers.get("accept", ""):  # a browser; load balancers get 200 {}
            return RedirectResponse(UI_PREFIX + "/", 302)
        return json_response({})

    condition_names = {Condition.FULL: "full", Condition.READ_ONLY: "refusing writes"}

    async def ready(headers: Headers) -> Response:
        if health is not None:  # the periodic check decides, with its threshold
            if not health.healthy:
                return json_response({"storage": "unavailable"}, 503)
        else:
            try:
                await storage.check()
            except Exception as exc:
                # An outage is logged with its incident, not once per probe.
                if not isinstance(exc, StorageError) or incidents.refuse(exc) is None:
                    log.warning("readiness check failed: %s", exc)
                return json_response({"storage": "unavailable"}, 503)
            incidents.succeeded("GET", reached_storage=True)
        # A full storage still answers reads; only refused writes tell, as this worker saw them.
        for condition, name in condition_names.items():
            if condition in incidents.current:
                return json_response({"storage": name}, 503)
        return json_response({"storage": "ok"})

    proxy = _proxy(config, storage)
    pulls = None  # read-only mode writes nothing, pull times included
    if not config.storage.read_only:
        pulls = PullRecorder(storage.driver, config.storage.pull_records_interval)
        observability.events.listen(pulls.listen)
    routes: dict[str, ASGIApp] = {
        "/": _read_only_endpoint(root),
        "/readyz": _read_only_endpoint(ready),
        SEARCH_PATH: interface.search,
    }
    route_names = {"/": "health", "/readyz": "health", SEARCH_PATH: "search"}
    if token_server is not None:
        routes[token_server.settings.path] = token_server
        route_names[token_server.settings.path] = "token"
    api: ASGIApp = RegistryAPI(
        storage,
        controller,
        settings,
        config.storage.read_only,
        {
            REPOSITORY_EXTENSION: RepositoryEndpoint(storage, config.storage.delete_enabled),
            USAGE_EXTENSION: UsageEndpoint(storage),
            **(extensions or {}),
        },
        mirror_handlers=proxy.handler if proxy else None,
    )
    # The interface decides itself who may see what: anonymous visitors browse exactly
    # where anonymous pull is allowed, and sign in through its own form.
    mounted: dict[str, ASGIApp] = {
        UI_PREFIX: interface.pages,
        **{prefix: _entered(app, controller, prefix) for prefix, app in (mounts or {}).items()},
    }
    if health is not None:
        api = _gated(api, health)
        routes = {path: _gated(app, health) for path, app in routes.items()}
        mounted = {prefix: _gated(app, health) for prefix, app in mounted.items()}
    application = Application(
        api=api,
        routes=routes,
        lifespan=lambda: _lifespan(
            config, storage, controller, proxy, observability, pulls=pulls, notifier=notifier
        ),
        headers=config.http.headers,
        mounts=mounted,
        incidents=incidents,
    )
    # Inside the observing layer: the access log, metrics and audit see a refused write's 503.
    notified = notifier.application(application) if notifier is not None else application
    return observability.application(notified, route_names, {prefix: prefix.strip("/") for prefix in mounted})


def _notifier(config: Config, driver: StorageDriver, observability: Observability) -> Notifier | None:
    """The webhooks' notifier, when endpoints are configured. Webhooks and mirrors need httpx
    (about 5 MiB in every worker): their modules are imported only when configured."""
    if not config.notifications.endpoints:
        return None
    from .notifications import Notifier  # noqa: PLC0415 - see the docstring

    return Notifier.from_config(config, driver, observability.metrics)


def _proxy(config: Config, storage: Storage) -> Proxy | None:
    if not config.proxy:
        return None
    from .proxy import Proxy  # noqa: PLC0415 - as the notifier's

    return Proxy(config.proxy, storage)


def _gated(app: ASGIApp, health: StorageHealth) -> ASGIApp:
    """While the storage check fails, every request is answered 503, as Distribution does."""

    async def gated(scope: Scope, receive: Receive, send: Send) -> None:
        if not health.healthy:
            raise RegistryError(
                ErrorCode.UNAVAILABLE, "health check failed: please see /debug/health", {"Retry-After": "5"}
            )
        await app(scope, receive, send)

    return gated


def _entered(app: ASGIApp, controller: AccessController, prefix: str) -> ASGIApp:
    """``app`` behind the decision the base endpoint gets: any caller the controller accepts."""
    route = prefix.strip("/")

    async def entered(scope: Scope, receive: Receive, send: Send) -> None:
        grant = await controller.authorize(Headers(scope=scope), required_access(Action.ENTER, None))
        scope[CALLER] = Caller(grant.account, route)
        await app(scope, receive, send)

    return entered


def _read_only_endpoint(handler: Callable[[Headers], Awaitable[Response]]) -> ASGIApp:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in {"GET", "HEAD"}:
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
        await (await handler(Headers(scope=scope)))(scope, receive, send)

    return endpoint


def app_from_environment() -> ASGIApp:
    """The uvicorn factory each worker process calls."""
    path = os.environ.get(CONFIG_ENV) or None
    return create_app(load_config(path))


@contextlib.asynccontextmanager
async def _lifespan(
    config: Config,
    storage: Storage,
    controller: AccessController,
    proxy: Proxy | None,
    observability: Observability,
    *,
    pulls: PullRecorder | None,
    notifier: Notifier | None,
) -> AsyncIterator[None]:
    purging = config.storage.upload_purging
    work: list[Coroutine[Any, Any, None]] = []
    if proxy is not None:
        proxy.start()
    if purging.enabled and not config.storage.read_only:
        work.append(_purge_uploads_forever(storage, purging.age, purging.interval, purging.dry_run))
    elif not config.storage.read_only:
        work.append(_purge_staged_writes_forever(storage, purging.interval))
    if config.storage.garbage_collect.enabled:
        if config.storage.read_only:
            log.info("scheduled garbage collection is disabled: the storage is in read-only mode")
        else:
            work.append(collect_forever(config))
    try:
        async with (
            running_beside(*work),
            observability.running(),
            contextlib.AsyncExitStack() as stack,
        ):
            if pulls is not None:
                await stack.enter_async_context(pulls.running())
            if notifier is not None:
                await stack.enter_async_context(notifier.running())
            yield
    finally:
        if proxy is not None:
            await proxy.close()
        await controller.close()
        await storage.driver.close()


async def _purge_staged_writes_forever(storage: Storage, interval: float) -> None:
    """With upload purging off: what killed writers left (``Storage.purge_staged_writes``), on
    upload purging's schedule and start jitter."""
    await asyncio.sleep(random.uniform(0, min(interval, 3600.0)))  # noqa: S311 - jitter only
    while True:
        with one_round(log, "removing interrupted writes"):
            removed = await storage.purge_staged_writes()
            if removed:
                log.info("removed %d files of interrupted writes", removed)
        await asyncio.sleep(interval)


async def _purge_uploads_forever(storage: Storage, age: float, interval: float, dry_run: bool) -> None:
    """Every worker purges; deletes are idempotent, and a random start within the first hour (as
    Distribution does) keeps a fresh start, or many workers at once, from walking storage together."""
    await asyncio.sleep(random.uniform(0, min(interval, 3600.0)))  # noqa: S311 - jitter only
    while True:
        with one_round(log, "upload purging"):
            purged = await storage.purge_uploads(age, dry_run)
            if purged:
                verb = "would purge" if dry_run else "purged"
                log.info("%s %d abandoned uploads", verb, len(purged))
        await asyncio.sleep(interval)
