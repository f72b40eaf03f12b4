"""GET, HEAD and DELETE of blobs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.responses import RedirectResponse, Response

from ..errors import ErrorCode, RegistryError
from ..references import Digest
from ..storage import paths
from ..storage.blobs import close_stream
from ..zerocopy import offers_zerocopy
from .context import Context
from .responses import EncodedResponse, StreamedResponse, ZeroCopyResponse, empty

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
BEYOND = 10**18
"""A byte position past any blob (an exabyte) and within what storage takes in a range."""
IMMUTABLE = "max-age=31536000"
_HEAD_HEADERS = (
    (b"cache-control", IMMUTABLE.encode()),
    (b"accept-ranges", b"bytes"),
    (b"content-type", b"application/octet-stream"),
)
"""A HEAD answer's headers besides the digest, the ETag and the length, as sent."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A ``Range`` header's one span as written, before the blob's size is known: ``bytes=A-B``
    (``first`` A, ``last`` B), ``bytes=A-`` (``last`` None), the suffix ``bytes=-N`` (``first``
    None, ``last`` N); malformed (several spans, another unit): both None. A number from
    ``BEYOND`` up is ``BEYOND``: past any blob, whatever its digits."""

    header: str
    first: int | None
    last: int | None

    @classmethod
    def parse(cls, header: str) -> ByteRange:
        match = _RANGE.fullmatch(header.strip().replace(" ", ""))
        if not match or match.groups() == ("", ""):
            return cls(header, None, None)
        first_text, last_text = match.groups()
        return cls(header, _number(first_text), _number(last_text))

    def bounds(self, size: int) -> tuple[int, int]:
        """The (first, last) bytes of a blob of ``size``; 416 when malformed or unsatisfiable."""
        first, last = self.first, self.last
        if first is None:  # a suffix: the last N bytes, or malformed
            if not last or size == 0:
                raise self._unsatisfiable(size)
            return max(size - last, 0), size - 1
        if first >= size or (last is not None and last < first):
            raise self._unsatisfiable(size)
        return first, size - 1 if last is None else min(last, size - 1)

    def span(self) -> tuple[int, int | None] | None:
        """The (offset, length) asked for where that is plain without the blob's size (``bytes=A-B``,
        ``bytes=A-``), for a read opened before the size is known; None otherwise."""
        first, last = self.first, self.last
        if first is None or BEYOND in (first, last):
            return None  # a suffix, malformed, or past what storage takes: answered once the size is known
        if last is None:
            return first, None
        return (first, last - first + 1) if last >= first else None

    def _unsatisfiable(self, size: int) -> RegistryError:
        return RegistryError(
            ErrorCode.RANGE_NOT_SATISFIABLE,
            {"range": self.header[:100], "size": size},
            headers={"Content-Range": f"bytes */{size}"},
        )


def _number(digits: str) -> int | None:
    if not digits:
        return None
    significant = digits.lstrip("0")
    # Compared, never converted, past 18 digits: an int of thousands of digits is refused by
    # Python (ValueError), and means the same as BEYOND here.
    return BEYOND if len(significant) > 18 else int(significant or "0")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The (first, last) bytes of a single ``Range`` of a blob of ``size``; 416 when malformed or
    unsatisfiable."""
    return ByteRange.parse(header).bounds(size)


async def get_blob(ctx: Context) -> Response:
    digest = Digest.parse(ctx.argument)
    request = ctx.request
    text = str(digest)
    etag = f'"{text}"'
    fresh = request.headers.get("if-none-match") != etag
    range_header = request.headers.get("range")
    requested = None if range_header is None else ByteRange.parse(range_header)
    settings = ctx.settings
    blobs = ctx.storage.blobs
    if (
        blobs.fetches_at_once
        and request.method == "GET"
        and fresh
        and not settings.redirect
        and settings.accel_redirect is None
    ):
        span = (0, None) if requested is None else requested.span()
        fetched = None if span is None else await blobs.fetch(ctx.name, digest, *span)
        if fetched is not None:
            # The link confirmed and the content opened at once; the range checked against the
            # size the content's answer gave before anything is sent.
            size, body = fetched
            try:
                status, _, length, headers = _content_headers(text, etag, size, requested)
            except BaseException:
                await close_stream(body)
                raise
            headers["Content-Length"] = str(length)
            return StreamedResponse(body, status, headers)
    # Before a redirect too, where only a Range needs the size: it also confirms the content is
    # there, so that a link left to data gone (Distribution's collection leaves them) answers
    # 404 BLOB_UNKNOWN, not a redirect to nothing.
    size = await blobs.stat(ctx.name, digest, fetching=request.method == "GET")
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
    status, first, length, headers = _content_headers(text, etag, size, requested)
    if settings.redirect:
        url = await blobs.redirect_url(digest)
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
        fd = await blobs.open_local(digest)
        if fd is not None:  # the server sends the file: no byte passes through the process
            return ZeroCopyResponse(fd, first, length, status, headers)
    body = await blobs.open(digest, first, length)
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
    text: str, etag: str, size: int, requested: ByteRange | None
) -> tuple[int, int, int, dict[str, str]]:
    """(status, first byte, length, headers) of the content's answer; 416 by the registry's own
    rules (``ByteRange.bounds``) for a range it cannot satisfy."""
    headers = _headers(text, etag)
    if requested is None:
        return 200, 0, size, headers
    first, last = requested.bounds(size)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return 206, first, last - first + 1, headers


async def delete_blob(ctx: Context) -> Response:
    if not ctx.settings.delete_enabled:
        raise RegistryError(ErrorCode.DELETE_DISABLED)
    await ctx.storage.blobs.unlink(ctx.name, Digest.parse(ctx.argument))
    return empty(202)
