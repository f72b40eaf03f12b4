"""What S3 answers to listings and multipart requests, as the driver uses it.

The signed path (lean.py) reads these answers' XML here and boto3's path (``BotoObjects``,
boto_objects.py) fills the same types from its dictionaries, so the driver and the writer see one
shape either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree
from xml.sax.saxutils import escape

LIST_PAGE = 1000
"""The most keys one ListObjectsV2 answer holds."""


@dataclass(frozen=True)
class Listed:
    """An object of a listing."""

    key: str
    size: int
    modified: float


@dataclass(frozen=True)
class ListPage:
    """One ListObjectsV2 answer: its objects, the common prefixes (with a delimiter) and the
    token of the next page (None on the last)."""

    objects: list[Listed]
    prefixes: list[str]
    next_token: str | None


@dataclass(frozen=True)
class Part:
    """A part stored in a multipart upload."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class Upload:
    """A multipart upload under way."""

    key: str
    upload_id: str
    initiated: float


def iso_date(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _text(element: ElementTree.Element, name: str) -> str:
    return element.findtext("{*}" + name) or ""


def _truncated(root: ElementTree.Element) -> bool:
    return _text(root, "IsTruncated") == "true"


def list_page(body: bytes) -> ListPage:
    """A ListObjectsV2 answer."""
    root = ElementTree.fromstring(body)  # noqa: S314 - the bucket's own server, expat's limits
    objects = [
        Listed(_text(item, "Key"), int(_text(item, "Size") or 0), iso_date(_text(item, "LastModified")))
        for item in root.iterfind("{*}Contents")
    ]
    prefixes = [_text(common, "Prefix") for common in root.iterfind("{*}CommonPrefixes")]
    token = _text(root, "NextContinuationToken") if _truncated(root) else None
    return ListPage(objects, prefixes, token or None)


def parts_page(body: bytes) -> tuple[list[Part], str | None]:
    """A ListParts answer: its parts and the marker of the next page (None on the last)."""
    root = ElementTree.fromstring(body)  # noqa: S314 - as above
    parts = [
        Part(int(_text(part, "PartNumber")), _text(part, "ETag"), int(_text(part, "Size")))
        for part in root.iterfind("{*}Part")
    ]
    return parts, (_text(root, "NextPartNumberMarker") or None) if _truncated(root) else None


def uploads_page(body: bytes) -> tuple[list[Upload], tuple[str, str] | None]:
    """A ListMultipartUploads answer: its uploads and the key and upload markers of the next
    page (None on the last)."""
    root = ElementTree.fromstring(body)  # noqa: S314 - as above
    uploads = [
        Upload(_text(upload, "Key"), _text(upload, "UploadId"), iso_date(_text(upload, "Initiated")))
        for upload in root.iterfind("{*}Upload")
    ]
    following = (_text(root, "NextKeyMarker"), _text(root, "NextUploadIdMarker"))
    return uploads, following if _truncated(root) else None


def field(body: bytes, name: str) -> str:
    """The text of the top element ``name`` of an answer (an upload's id, a copied part's ETag)."""
    return _text(ElementTree.fromstring(body), name)  # noqa: S314 - as above


def completion(parts: Iterable[tuple[int, str]]) -> bytes:
    """The body of a CompleteMultipartUpload of ``parts`` (number, ETag)."""
    listed = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>" for number, etag in parts
    )
    return f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode()
