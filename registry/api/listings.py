"""The base endpoint and the lists: tags, catalog, referrers."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response

from ..errors import ErrorCode, RegistryError
from ..references import Digest
from ..storage.manifest_format import OCI_INDEX
from .context import Context
from .responses import EncodedResponse, json_response

DEFAULT_CATALOG_PAGE = 100


_BASE_HEADERS = ((b"content-length", b"2"), (b"content-type", b"application/json"))


async def base(ctx: Context) -> Response:
    return EncodedResponse(200, [*_BASE_HEADERS], b"{}")  # the most frequent request: no encoding


def _page_size(ctx: Context, default: int | None, maximum: int | None) -> int | None:
    value = ctx.request.query_params.get("n")
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, {"n": value[:20]})
    return min(int(value), maximum) if maximum is not None else int(value)


def _next_link(path: str, limit: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": limit, "last": last})}>; rel="next"'


async def list_tags(ctx: Context) -> Response:
    limit = _page_size(ctx, None, None)
    last = ctx.request.query_params.get("last") or None
    if limit == 0:
        await ctx.storage.tags.all_names(ctx.name)  # still 404 for an unknown repository
        return json_response({"name": ctx.name, "tags": []})
    tags, more = await ctx.storage.tags.page(ctx.name, limit, last)
    headers = {}
    if more and limit is not None and tags:
        headers["Link"] = _next_link(f"/v2/{ctx.name}/tags/list", limit, tags[-1])
    return json_response({"name": ctx.name, "tags": tags}, headers=headers)


async def catalog(ctx: Context) -> Response:
    maximum = ctx.settings.catalog_max_entries
    limit = _page_size(ctx, min(DEFAULT_CATALOG_PAGE, maximum), maximum)
    assert limit is not None
    last = ctx.request.query_params.get("last") or None
    if limit == 0:
        return json_response({"repositories": []})
    names, more = await ctx.storage.catalog.page(limit, last, ctx.catalog_filter)
    headers = {}
    if more and names:
        headers["Link"] = _next_link("/v2/_catalog", limit, names[-1])
    return json_response({"repositories": names}, headers=headers)


async def referrers(ctx: Context) -> Response:
    subject = Digest.parse(ctx.argument)
    artifact_type = ctx.request.query_params.get("artifactType") or None
    descriptors = await ctx.storage.manifests.referrers(ctx.name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return json_response(index, headers=headers, media_type=OCI_INDEX)
