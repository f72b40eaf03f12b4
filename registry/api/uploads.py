"""Blob upload sessions: start (or mount, or push in one request), chunks, status, finish, cancel."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from starlette.responses import Response

from ..errors import ErrorCode, RegistryError
from ..rawbody import raw_body
from ..references import Digest, RepositoryName, UploadId, parse_algorithm
from .bodies import RequestBody
from .context import Context
from .responses import EncodedResponse, empty

_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def range_header(size: int) -> str:
    """The upload's ``Range`` header value; ``0-0`` for an empty upload, as Docker expects."""
    return f"0-{max(size - 1, 0)}"


@contextlib.contextmanager
def _answering_range() -> Iterator[None]:
    """A chunk that does not continue the upload is answered with the upload's current range."""
    try:
        yield
    except RegistryError as error:
        if error.code is ErrorCode.UPLOAD_RANGE_INVALID and isinstance(error.detail, dict):
            error.headers["Range"] = range_header(error.detail["expected_start"])
        raise


def _upload_headers(ctx: Context, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": ctx.url(f"/v2/{ctx.name}/blobs/uploads/{upload_id}"),
        "Range": range_header(size),
        "Docker-Upload-UUID": upload_id,
    }


def _blob_created(ctx: Context, digest: Digest) -> Response:
    # Every mount answers with this: its headers given as sent, no dictionary to encode.
    text = str(digest)
    return EncodedResponse(
        201,
        [
            (b"content-length", b"0"),
            (b"location", ctx.url(f"/v2/{ctx.name}/blobs/{text}").encode("latin-1")),
            (b"docker-content-digest", text.encode()),
        ],
    )


def _chunk_start(ctx: Context) -> int | None:
    """Where a chunk says it starts (``Content-Range``), checked against its ``Content-Length``."""
    header = ctx.request.headers.get("content-range")
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if not match:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, {"content-range": header[:100]})
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise RegistryError(ErrorCode.UPLOAD_RANGE_INVALID, {"content-range": header[:100]})
    length = ctx.request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) != last - first + 1:
        raise RegistryError(ErrorCode.SIZE_INVALID, {"content-range": header[:100], "content-length": length})
    return first


def _length(ctx: Context) -> int | None:
    """The body's declared length; None when it is sent in chunks of unannounced size."""
    headers = ctx.request.headers
    length = headers.get("content-length")
    if length is None or "transfer-encoding" in headers or not length.isdigit():
        return None
    return int(length)


def _body(ctx: Context) -> RequestBody | None:
    headers = ctx.request.headers
    if headers.get("content-length") == "0":
        return None
    if "content-length" not in headers and "transfer-encoding" not in headers:
        return None
    return RequestBody(ctx.request.receive, raw_body(ctx.request.scope))


async def start_upload(ctx: Context) -> Response:
    query = ctx.request.query_params
    storage = ctx.storage
    mount = query.get("mount")
    if mount is not None:
        digest = Digest.parse(mount)
        source_name = query.get("from")
        source = RepositoryName.parse(source_name) if source_name is not None else None
        allowed = await ctx.may_pull(source) if source is not None else ctx.settings.anonymous_mount
        if allowed and await storage.blobs.mount(ctx.name, source, digest) is not None:
            return _blob_created(ctx, digest)
    algorithm = parse_algorithm(query.get("digest-algorithm", "sha256"))
    digest_param = query.get("digest")
    if digest_param is not None:
        digest = Digest.parse(digest_param)
        upload_id = await storage.uploads.start(ctx.name, digest.algorithm)
        await storage.uploads.complete(ctx.name, upload_id, digest, _body(ctx), length=_length(ctx))
        return _blob_created(ctx, digest)
    upload_id = await storage.uploads.start(ctx.name, algorithm)
    return empty(202, _upload_headers(ctx, upload_id, 0))


async def upload_status(ctx: Context) -> Response:
    upload_id = UploadId.parse(ctx.argument)
    size = await ctx.storage.uploads.size(ctx.name, upload_id)
    return empty(204, _upload_headers(ctx, upload_id, size))


async def append_chunk(ctx: Context) -> Response:
    upload_id = UploadId.parse(ctx.argument)
    start = _chunk_start(ctx)
    body = _body(ctx)
    uploads = ctx.storage.uploads
    if body is None:
        size = await uploads.size(ctx.name, upload_id)
        if start is not None and start != size:
            raise RegistryError(ErrorCode.UPLOAD_RANGE_INVALID, headers={"Range": range_header(size)})
    else:
        with _answering_range():
            size = await uploads.append(ctx.name, upload_id, body, start, length=_length(ctx))
    return empty(202, _upload_headers(ctx, upload_id, size))


async def finish_upload(ctx: Context) -> Response:
    upload_id = UploadId.parse(ctx.argument)
    digest_param = ctx.request.query_params.get("digest")
    if digest_param is None:
        raise RegistryError(ErrorCode.DIGEST_INVALID, {"reason": "the digest query parameter is required"})
    digest = Digest.parse(digest_param)
    start = _chunk_start(ctx)
    with _answering_range():
        await ctx.storage.uploads.complete(
            ctx.name, upload_id, digest, _body(ctx), start, length=_length(ctx)
        )
    return _blob_created(ctx, digest)


async def cancel_upload(ctx: Context) -> Response:
    await ctx.storage.uploads.cancel(ctx.name, UploadId.parse(ctx.argument))
    return empty(204)
