"""Distribution's webhook events, made from what one request did.

The fields, their names and which of them each action carries are CNCF Distribution 3's
(``notifications/event.go`` and ``bridge.go`` upstream), so a receiver written for Distribution
reads them unchanged: a blob push, pull or mount names the blob as ``application/octet-stream``
with its size; a manifest push or pull names the manifest's media type, its digest, the tag
when the client named one and, with ``includereferences``, the descriptors it refers to; a
delete names only the digest (or the tag) with an empty media type and a zero size.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

BLOB_MEDIA_TYPE = "application/octet-stream"
"""What Distribution calls every blob in its events, whatever the manifest calls it."""
DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")


@dataclass(frozen=True)
class Source:
    """The registry node that made the events: ``host:port`` and an id per process."""

    addr: str
    instance_id: str

    def record(self) -> dict[str, str]:
        return {"addr": self.addr, "instanceID": self.instance_id}


@dataclass
class Happened:
    """What one successful request did, as the notifications layer saw it."""

    action: str
    """push, pull, mount or delete."""
    kind: str
    """manifest or blob."""
    repository: str
    digest: str
    tag: str | None = None
    media_type: str = ""
    size: int = 0
    manifest: bytes | None = None
    """The manifest's bytes (pushed or pulled), for its references."""
    from_repository: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    id: str
    addr: str
    host: str
    method: str
    user_agent: str
    account: str | None

    def record(self) -> dict[str, str]:
        record = {"id": self.id}
        for key, value in (("addr", self.addr), ("host", self.host), ("method", self.method)):
            if value:
                record[key] = value
        if self.user_agent:
            record["useragent"] = self.user_agent
        return record


def event(
    happened: Happened, request: RequestRecord, source: Source, base_url: str, include_references: bool
) -> dict[str, Any]:
    """One event as Distribution serializes it."""
    return {
        "id": event_id(),
        "timestamp": timestamp(time.time_ns()),
        "action": happened.action,
        "target": _target(happened, base_url, include_references),
        "request": request.record(),
        "actor": {"name": request.account} if request.account else {},
        "source": source.record(),
    }


def _target(happened: Happened, base_url: str, include_references: bool) -> dict[str, Any]:
    if happened.action == "delete":
        target: dict[str, Any] = {"mediaType": "", "digest": happened.digest, "size": 0}
        target["repository"] = happened.repository
        if happened.tag:
            target["tag"] = happened.tag
        return target
    target = {
        "mediaType": happened.media_type,
        "digest": happened.digest,
        "size": happened.size,
        "length": happened.size,
        "repository": happened.repository,
    }
    if happened.from_repository:
        target["fromRepository"] = happened.from_repository
    section = "manifests" if happened.kind == "manifest" else "blobs"
    target["url"] = f"{base_url}/v2/{happened.repository}/{section}/{happened.digest}"
    if happened.tag:
        target["tag"] = happened.tag
    if include_references and happened.manifest is not None:
        references = manifest_references(happened.manifest)
        if references:
            target["references"] = references
    return target


def manifest_media_type(manifest: bytes, content_type: str | None) -> str:
    """The media type Distribution gives a manifest: its own ``mediaType`` field, else the one
    it was sent or served as."""
    document = _document(manifest)
    declared = document.get("mediaType") if document is not None else None
    if isinstance(declared, str) and declared:
        return declared
    return (content_type or "").split(";")[0].strip()


def manifest_references(manifest: bytes) -> list[dict[str, Any]]:
    """What a manifest refers to, as Distribution's ``References()``: an image's config then its
    layers, an index's manifests; each descriptor with the fields an OCI descriptor has."""
    document = _document(manifest)
    if document is None:
        return []
    found: list[Any] = []
    if isinstance(document.get("manifests"), list):
        found = document["manifests"]
    else:
        if isinstance(document.get("config"), dict):
            found.append(document["config"])
        if isinstance(document.get("layers"), list):
            found.extend(document["layers"])
    return [
        {key: item[key] for key in DESCRIPTOR_FIELDS if key in item}
        for item in found
        if isinstance(item, dict)
    ]


def _document(manifest: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(manifest)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def event_id() -> str:
    """A UUID version 7, as Distribution 3 makes them: time-ordered, random below."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def timestamp(nanoseconds: int) -> str:
    """RFC 3339 with nanoseconds in UTC, trailing zeros trimmed, as Go's RFC3339Nano writes it."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"
