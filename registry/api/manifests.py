"""GET, HEAD, PUT and DELETE of manifests, with content negotiation on ``Accept``."""

from __future__ import annotations

import json

from starlette.responses import Response

from ..errors import ErrorCode, RegistryError
from ..lifecycle.repositories import forget_if_empty
from ..references import Digest, Tag, parse_reference
from ..storage import StoredManifest
from ..storage.manifest_format import IMAGE_MANIFESTS, INDEXES, media_type_of
from .context import Context
from .responses import EncodedResponse, empty

MAX_MANIFEST_BYTES = 4 << 20
MAX_TAGS_PER_PUSH = 100
DEFAULT_PLATFORM = ("linux", "amd64")


def _accepted_types(ctx: Context) -> set[str] | None:
    """The media types the client accepts; None when it accepts anything."""
    values = ctx.request.headers.getlist("accept")
    types = {media_type_of(part) for value in values for part in value.split(",")} - {""}
    if not types or "*/*" in types:
        return None
    return types


async def _negotiate(ctx: Context, stored: StoredManifest, by_tag: bool) -> StoredManifest:
    """Serve the manifest as pushed when the client accepts its type. A client that accepts
    single images but not lists gets the linux/amd64 image of a list pulled by tag, as
    Distribution does; never by digest, where other content would not match the digest."""
    accepted = _accepted_types(ctx)
    if accepted is None or stored.media_type in accepted:
        return stored
    if by_tag and stored.media_type in INDEXES and accepted & IMAGE_MANIFESTS:
        document = json.loads(stored.content)
        for entry in document.get("manifests", []):
            platform = entry.get("platform") or {}
            if (platform.get("os"), platform.get("architecture")) == DEFAULT_PLATFORM:
                child = await ctx.storage.manifests.get(ctx.name, Digest.parse(entry["digest"]))
                if child.media_type in accepted:
                    return child
    raise RegistryError(
        ErrorCode.MANIFEST_UNKNOWN,
        {"reason": f"the manifest is {stored.media_type}, which the Accept header does not list"},
    )


async def get_manifest(ctx: Context) -> Response:
    reference = parse_reference(ctx.argument)
    stored = await ctx.storage.manifests.get(ctx.name, reference)
    stored = await _negotiate(ctx, stored, isinstance(reference, Tag))
    digest = str(stored.digest)
    etag = f'"{digest}"'
    if ctx.request.headers.get("if-none-match") == etag:
        return empty(304, {"Docker-Content-Digest": digest, "ETag": etag})
    # A pull's every answer: its headers given as sent, no dictionary to encode.
    content = stored.content
    headers = [
        (b"content-type", stored.media_type.encode("latin-1")),
        (b"docker-content-digest", digest.encode()),
        (b"etag", etag.encode()),
        (b"content-length", b"%d" % len(content)),
    ]
    return EncodedResponse(200, headers, b"" if ctx.request.method == "HEAD" else content)


async def _read_manifest_body(ctx: Context) -> bytes:
    declared = ctx.request.headers.get("content-length")
    too_large = RegistryError(ErrorCode.MANIFEST_TOO_LARGE, {"limit": MAX_MANIFEST_BYTES})
    if declared is not None and declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in ctx.request.stream():
        body += chunk
        if len(body) > MAX_MANIFEST_BYTES:
            raise too_large
    return bytes(body)


async def put_manifest(ctx: Context) -> Response:
    reference = parse_reference(ctx.argument)
    # A push without a query (every docker push) parses none.
    tag_params = ctx.request.query_params.getlist("tag") if ctx.request.scope.get("query_string") else []
    if tag_params and isinstance(reference, Tag):
        raise RegistryError(ErrorCode.TAG_INVALID, {"reason": "tag parameters need a push by digest"})
    if len(tag_params) > MAX_TAGS_PER_PUSH:
        raise RegistryError(ErrorCode.TAG_INVALID, {"reason": f"at most {MAX_TAGS_PER_PUSH} tags"})
    extra_tags = tuple(dict.fromkeys(Tag.parse(t) for t in tag_params))
    content = await _read_manifest_body(ctx)
    digest, manifest = await ctx.storage.manifests.put(
        ctx.name, reference, content, ctx.request.headers.get("content-type"), extra_tags
    )
    # The answer's headers given as sent, as a mount's: no dictionary to encode.
    text = str(digest)
    headers = [
        (b"content-length", b"0"),
        (b"location", ctx.url(f"/v2/{ctx.name}/manifests/{text}").encode("latin-1")),
        (b"docker-content-digest", text.encode()),
    ]
    if manifest.subject is not None:
        headers.append((b"oci-subject", str(manifest.subject.digest).encode()))
    headers += [(b"oci-tag", tag.encode()) for tag in extra_tags]
    return EncodedResponse(201, headers)


async def delete_manifest(ctx: Context) -> Response:
    if not ctx.settings.delete_enabled:
        raise RegistryError(ErrorCode.DELETE_DISABLED)
    reference = parse_reference(ctx.argument)
    if isinstance(reference, Tag):
        await ctx.storage.tags.untag(ctx.name, reference)
    else:
        await ctx.storage.manifests.delete(ctx.name, reference)
    await forget_if_empty(ctx.storage.driver, ctx.name)
    return empty(202)
