"""GET, HEAD and DELETE of blobs."""

from __future__ import annotations

import re

from starlette.responses import RedirectResponse, Response

from ..errors import ErrorCode, RegistryError
from ..references import Digest
from ..storage import paths
from ..storage.blobs import close_stream
from ..zerocopy import offers_zerocopy
from .context import Context
from .responses import EncodedResponse, StreamedResponse, ZeroCopyResponse, empty

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
IMMUTABLE = "max-age=31536000"
_HEAD_HEADERS = (
    (b"cache-control", IMMUTABLE.encode()),
    (b"accept-ranges", b"bytes"),
    (b"content-type", b"application/octet-stream"),
)
"""A HEAD answer's headers besides the digest, the ETag and the length, as sent."""


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The (first, last) bytes of a single ``Range``; 416 when malformed or unsatisfiable."""
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    unsatisfiable = RegistryError(
        ErrorCode.RANGE_NOT_SATISFIABLE,
        {"range": header[:100], "size": size},
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not match or match.groups() == ("", ""):
        raise unsatisfiable
    first_text, last_text = match.groups()
    if not first_text:  # suffix: the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise unsatisfiable
        return max(size - length, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise unsatisfiable
    return first, min(last, size - 1)


def requested_span(header: str) -> tuple[int, int | None] | None:
    """The (offset, length) a ``Range`` asks for where that is plain without the blob's size
    (``bytes=A-B``, ``bytes=A-``), for a read opened before the size is known; None otherwise."""
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if not match or not match[1] or len(match[1]) > 18 or len(match[2]) > 18:
        return None  # a suffix, malformed, or past what storage takes: answered once the size is known
    first = int(match[1])
    if not match[2]:
        return first, None
    last = int(match[2])
    return (first, last - first + 1) if last >= first else None


async def get_blob(ctx: Context) -> Response:
    digest = Digest.parse(ctx.argument)
    request = ctx.request
    text = str(digest)
    etag = f'"{text}"'
    fresh = request.headers.get("if-none-match") != etag
    range_header = request.headers.get("range")
    settings = ctx.settings
    if request.method == "GET" and fresh and not settings.redirect and settings.accel_redirect is None:
        span = (0, None) if range_header is None else requested_span(range_header)
        fetched = None if span is None else await ctx.storage.blobs.fetch(ctx.name, digest, *span)
        if fetched is not None:
            # The link confirmed and the content opened at once; the range checked against the
            # size the content's answer gave before anything is sent.
            size, body = fetched
            try:
                status, _, length, headers = _content_headers(text, etag, size, range_header)
            except BaseException:
                await close_stream(body)
                raise
            headers["Content-Length"] = str(length)
            return StreamedResponse(body, status, headers)
    size = await ctx.storage.blobs.stat(ctx.name, digest, fetching=request.method == "GET")
    if request.method == "HEAD" and fresh:
        # Clients' most frequent question about a blob: its headers given as sent, no dictionary.
        encoded = text.encode()
        return EncodedResponse(
            200,
            [
                (b"docker-content-digest", encoded),
                (b"etag", b'"%s"' % encoded),
                *_HEAD_HEADERS,
                (b"content-length", b"%d" % size),
            ],
        )
    if not fresh:
        headers = _headers(text, etag)
        del headers["Content-Type"]
        return empty(304, headers)
    # Checked before any redirect: storage answers bad ranges its own way (S3: 200 or a 206 of
    # other bytes for some), the registry with 416 on every backend.
    status, first, length, headers = _content_headers(text, etag, size, range_header)
    if settings.redirect:
        url = await ctx.storage.blobs.redirect_url(digest)
        if url is not None:
            return RedirectResponse(url, 307, {"Docker-Content-Digest": str(digest)})
    if settings.accel_redirect is not None:
        # nginx sends the file itself, with Accept-Ranges and the Range asked for (checked above);
        # the shipped site puts this response's digest and ETag on its answer.
        del headers["Accept-Ranges"]
        headers.pop("Content-Range", None)
        headers["X-Accel-Redirect"] = settings.accel_redirect + paths.blob_data_in_blobs(digest)
        return Response(b"", 200, headers)
    if offers_zerocopy(request.scope):
        fd = await ctx.storage.blobs.open_local(digest)
        if fd is not None:  # the server sends the file: no byte passes through the process
            return ZeroCopyResponse(fd, first, length, status, headers)
    body = await ctx.storage.blobs.open(digest, first, length)
    headers["Content-Length"] = str(length)
    return StreamedResponse(body, status, headers)


def _headers(text: str, etag: str) -> dict[str, str]:
    return {
        "Docker-Content-Digest": text,
        "ETag": etag,
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }


def _content_headers(
    text: str, etag: str, size: int, range_header: str | None
) -> tuple[int, int, int, dict[str, str]]:
    """(status, first byte, length, headers) of the content's answer; 416 by the registry's own
    rules (``parse_range``) for a range it cannot satisfy."""
    headers = _headers(text, etag)
    if range_header is None:
        return 200, 0, size, headers
    first, last = parse_range(range_header, size)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return 206, first, last - first + 1, headers


async def delete_blob(ctx: Context) -> Response:
    if not ctx.settings.delete_enabled:
        raise RegistryError(ErrorCode.DELETE_DISABLED)
    await ctx.storage.blobs.unlink(ctx.name, Digest.parse(ctx.argument))
    return empty(202)
