"""The pull-through cache: repositories that mirror another registry, beside ordinary ones.

``Proxy.handler`` picks, for a request the API has routed and authorized, the mirror's handler
when the repository mirrors an upstream: manifests, blobs and tags lists are filled from the
upstream into the registry's own storage and then served as any cached content is; pushes and
deletes are refused. Every other repository is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

from starlette.responses import Response

from ..api import blobs as blob_api
from ..api import listings as listing_api
from ..api import manifests as manifest_api
from ..api.blobs import IMMUTABLE, parse_range
from ..api.context import Context
from ..api.responses import StreamedResponse, json_response
from ..api.router import Route
from ..config import Upstream
from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName, parse_reference
from ..storage import Storage
from ..storage.blobs import close_stream
from .expiry import LONGEST_INTERVAL, Expiry, UseRecorder, interval_for, keep_expiring
from .fetches import Fetches, Served
from .manifests import MirroredManifests
from .mirrors import Mirror, Mirrors
from .transfer import FetchFailed
from .upstream import UpstreamRefused, UpstreamUnavailable

__all__ = ["Proxy"]

Handler = Callable[[Context], Awaitable[Response]]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_SECONDS = "10"


class Proxy:
    def __init__(self, upstreams: tuple[Upstream, ...], storage: Storage) -> None:
        self._mirrors = Mirrors(upstreams)
        self._storage = storage
        self._fetches = Fetches(storage.driver, storage.blobs)
        self._manifests = MirroredManifests(storage.driver, storage, self._fetches)
        self._uses = UseRecorder(storage.driver)
        self._expiry = Expiry(storage, self._mirrors.find)
        self._expiring: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin writing last uses, expiring unused content and removing abandoned downloads
        (with ``ttl: 0`` everywhere, no expiry: the lifecycle machinery may want the uses)."""
        ttls = [m.upstream.ttl for m in self._mirrors.mirrors if m.upstream.ttl > 0]
        interval = interval_for(min(ttls)) if ttls else LONGEST_INTERVAL
        self._expiring = asyncio.create_task(
            keep_expiring(self._uses, self._expiry, self._fetches.sweep, interval)
        )

    async def close(self) -> None:
        if self._expiring is not None:
            self._expiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiring
        with contextlib.suppress(Exception):
            await self._uses.flush()
        await self._fetches.close()
        await self._mirrors.close()

    def handler(self, route: Route, method: str, name: RepositoryName) -> Handler | None:
        """The handler for a repository that mirrors an upstream; None for any other."""
        mirror = self._mirrors.find(name) if name else None
        if mirror is None:
            return None
        if method in WRITE_METHODS:
            return _refuse(mirror)
        chosen: Callable[[Mirror, Context], Awaitable[Response]] | None = {
            Route.MANIFEST: self._get_manifest,
            Route.BLOB: self._get_blob,
            Route.TAGS: self._list_tags,
        }.get(route)
        return _reporting_upstream_errors(mirror, chosen) if chosen is not None else None

    async def _get_manifest(self, mirror: Mirror, ctx: Context) -> Response:
        await self._manifests.refresh(mirror, ctx.name, parse_reference(ctx.argument))
        response = await manifest_api.get_manifest(ctx)
        if response.status_code == 200:
            self._uses.used(ctx.name, Digest.parse(response.headers["Docker-Content-Digest"]))
        return response

    async def _get_blob(self, mirror: Mirror, ctx: Context) -> Response:
        digest = Digest.parse(ctx.argument)
        name, remote = ctx.name, mirror.remote_name(ctx.name)
        if not remote:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})
        unknown = RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        cached = await self._cached_blob(ctx)
        if cached is not None:
            self._uses.used(name, digest)
            return cached
        if await self._storage.blobs.size(digest) is not None:
            # Cached for another repository: this one may have it only if its upstream does.
            if await mirror.blob_size(remote, digest) is None:
                raise unknown
            await self._storage.blobs.mount(name, None, digest)
            self._uses.used(name, digest)
            return await blob_api.get_blob(ctx)
        if ctx.request.method == "HEAD":
            size = await mirror.blob_size(remote, digest)
            if size is None:
                raise unknown
            return Response(b"", 200, {**_blob_headers(digest), "Content-Length": str(size)})
        source = mirror.source(remote)
        served = await self._fetches.serve(name, digest, source, lambda: mirror.download(remote, digest))
        if served is None:  # the upstream lacks it, or it arrived meanwhile
            if await self._storage.blobs.size(digest) is None:
                raise unknown
            return await self._get_blob(mirror, ctx)
        if served.source != source and await mirror.blob_size(remote, digest) is None:
            raise unknown
        return await self._stream(ctx, name, digest, served)

    async def _stream(self, ctx: Context, name: RepositoryName, digest: Digest, served: Served) -> Response:
        headers = _blob_headers(digest)
        status, first, length = 200, 0, served.size
        range_header = ctx.request.headers.get("range")
        if range_header is not None:
            first, last = parse_range(range_header, served.size)
            status, length = 206, last - first + 1
            headers["Content-Range"] = f"bytes {first}-{last}/{served.size}"
        headers["Content-Length"] = str(length)
        chunks = _window(served.chunks, first, length)
        try:
            head = await anext(chunks, b"")
        except FetchFailed as exc:
            raise RegistryError(ErrorCode.UPSTREAM_FAILED, {"reason": str(exc)}) from None

        async def body() -> AsyncIterator[bytes | memoryview]:
            if head:
                yield head
            try:
                async for chunk in chunks:
                    yield chunk
            except FetchFailed as exc:
                # Under way, the response can only be cut short: the client sees it incomplete.
                raise RegistryError(ErrorCode.UPSTREAM_FAILED, {"reason": str(exc)}) from None
            finally:
                await close_stream(served.chunks)  # a client gone mid-way: what it still reads
            if length == served.size:  # the whole blob: it is this repository's now
                await self._storage.blobs.mount(name, None, digest)

        return StreamedResponse(body(), status, headers)

    @staticmethod
    async def _cached_blob(ctx: Context) -> Response | None:
        """The blob served as any blob of this repository is; None when the repository does not
        hold it (yet). One look at storage, as for an ordinary pull: a warm pull costs no more."""
        try:
            return await blob_api.get_blob(ctx)
        except RegistryError as exc:
            if exc.code is ErrorCode.BLOB_UNKNOWN:
                return None
            raise

    async def _list_tags(self, mirror: Mirror, ctx: Context) -> Response:
        """The upstream's tags list when it answers, else the cached view."""
        remote = mirror.remote_name(ctx.name)
        if not remote:
            return await listing_api.list_tags(ctx)
        params = {k: v for k in ("n", "last") if (v := ctx.request.query_params.get(k))}
        try:
            status, body, link = await mirror.tags(remote, urlencode(params))
            tags = json.loads(body).get("tags") if status == 200 else None
        except (UpstreamUnavailable, UpstreamRefused, ValueError, AttributeError):
            tags = None
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            return await listing_api.list_tags(ctx)
        headers = {"Link": link.replace(f"/v2/{remote}/", f"/v2/{ctx.name}/")} if link else {}
        return json_response({"name": ctx.name, "tags": tags}, headers=headers)


def _blob_headers(digest: Digest) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }


async def _window(
    chunks: AsyncIterator[bytes | memoryview], first: int, length: int
) -> AsyncIterator[bytes | memoryview]:
    """``length`` bytes of the stream from ``first``."""
    position, end = 0, first + length
    async for chunk in chunks:
        start, stop = max(first - position, 0), min(end - position, len(chunk))
        if start < stop:
            yield chunk[start:stop]
        position += len(chunk)
        if position >= end:
            return


def _refuse(mirror: Mirror) -> Handler:
    async def refuse(ctx: Context) -> Response:
        raise RegistryError(ErrorCode.MIRROR_READ_ONLY, {"upstream": mirror.url})

    return refuse


def _reporting_upstream_errors(
    mirror: Mirror, handler: Callable[[Mirror, Context], Awaitable[Response]]
) -> Handler:
    async def handle(ctx: Context) -> Response:
        try:
            return await handler(mirror, ctx)
        except UpstreamUnavailable as exc:
            raise RegistryError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                {"upstream": mirror.url, "reason": str(exc)},
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            ) from None
        except UpstreamRefused as exc:
            raise RegistryError(
                ErrorCode.UPSTREAM_FAILED, {"upstream": mirror.url, "reason": str(exc)}
            ) from None

    return handle
