"""What the pages show, read through the storage services: tags with their images, one image's
layers and configuration, an index's platforms, referrers. No HTTP here.

Everything read here is attacker-controlled text (pushed manifests and configurations): it is
typed and cut to size on the way in, and the templates escape it on the way out.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..errors import RegistryError
from ..lifecycle.records import tag_times
from ..references import Digest, Reference, RepositoryName, Tag
from ..storage import Storage
from ..storage.manifest_format import INDEXES, parse_manifest

MAX_CONFIG_BYTES = 1 << 20
"""A larger image configuration is not shown (real ones are a few KiB)."""
MAX_TEXT = 4096
"""Longer strings from a configuration are cut, so one label cannot make a page megabytes."""
MAX_ENTRIES = 500
"""At most this many environment variables, labels, ports or history entries are shown."""
CONCURRENT_READS = 50
"""A page of tags is read at once: on S3 each row is a few requests in a row (the driver keeps 64
connections); on a disk each read is a short hop to a thread."""
IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
"""Configuration types of runnable images: such a manifest is an image, not an artifact."""


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True, slots=True)
class Layer:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Child:
    """A manifest an index lists."""

    digest: str
    media_type: str
    size: int
    platform: Platform | None


@dataclass(frozen=True, slots=True)
class Configuration:
    platform: Platform | None = None
    created: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    """``created``, ``created_by``, ``comment``, ``empty_layer`` ("yes" or "")."""


@dataclass(frozen=True, slots=True)
class Image:
    """One manifest: an image (config and layers) or an index (children)."""

    digest: Digest
    media_type: str
    manifest_size: int
    is_index: bool
    artifact_type: str | None
    annotations: dict[str, str]
    subject: str | None
    config_digest: str | None = None
    config_size: int = 0
    layers: list[Layer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Manifest, configuration and layers (what a pull of this image downloads at most)."""
        return self.manifest_size + self.config_size + sum(layer.size for layer in self.layers)

    @property
    def platforms(self) -> list[Platform]:
        return [child.platform for child in self.children if child.platform is not None]


@dataclass(frozen=True, slots=True)
class TagRow:
    tag: Tag
    image: Image | None
    """None when the tag's manifest cannot be read (deleted meanwhile, or foreign)."""
    pushed_at: float | None
    total_size: int | None
    """For an index: every platform's image together."""
    referrers: int = 0
    """How many manifests refer to it (signatures, SBOMs, attestations)."""
    pulled_at: float | None = None
    """When it was last pulled, as far as pulls were recorded."""


async def read_image(storage: Storage, name: RepositoryName, reference: Reference) -> Image:
    """The manifest ``reference`` names in ``name``; MANIFEST_UNKNOWN when there is none,
    MANIFEST_INVALID when its content is not a manifest the registry understands."""
    stored = await storage.manifests.get(name, reference)
    manifest = parse_manifest(stored.content, stored.media_type)
    document = json.loads(stored.content)
    subject = str(manifest.subject.digest) if manifest.subject else None
    artifact_type = manifest.artifact_type if manifest.artifact_type not in IMAGE_CONFIGS else None
    if stored.media_type in INDEXES:
        children = [
            Child(str(child.digest), child.media_type, child.size, _platform(child.platform))
            for child in manifest.children
        ]
        return Image(
            stored.digest, stored.media_type, len(stored.content), True,
            artifact_type, manifest.annotations, subject, children=children,
        )  # fmt: skip
    config = manifest.blobs[0]
    return Image(
        stored.digest, stored.media_type, len(stored.content), False,
        artifact_type, manifest.annotations, subject,
        config_digest=str(config.digest),
        config_size=config.size,
        layers=[_layer(entry) for entry in document.get("layers", [])],
    )  # fmt: skip


async def read_configuration(storage: Storage, name: RepositoryName, image: Image) -> Configuration | None:
    """The image's configuration, or None when it is not an image configuration (an artifact's),
    too large to show, or unreadable."""
    if image.config_digest is None:
        return None
    digest = Digest.parse(image.config_digest)
    try:
        size = await storage.blobs.stat(name, digest)
        if size > MAX_CONFIG_BYTES:
            return None
        data = bytearray()
        async for chunk in await storage.blobs.open(digest, 0, size):
            data += chunk
        document = json.loads(bytes(data))
    except (RegistryError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    return _configuration(document)


async def tag_rows(storage: Storage, name: RepositoryName, tags: list[Tag]) -> list[TagRow]:
    limit = asyncio.Semaphore(CONCURRENT_READS)

    async def image_of(tag: Tag) -> Image | None:
        try:
            return await read_image(storage, name, tag)
        except RegistryError:
            return None

    async def total_of(image: Image) -> int | None:
        return image.size if not image.is_index else await _index_size(storage, name, image)

    async def row(tag: Tag) -> TagRow:
        # What does not depend on each other is read side by side: on S3 every read is a request.
        async with limit:
            (linked, times), image = await asyncio.gather(
                asyncio.gather(storage.tags.pushed_at(name, tag), tag_times(storage.driver, name, tag)),
                image_of(tag),
            )
            # The later of the two: a tag pushed by Distribution after a record was written.
            pushed_at = max((t for t in (linked, times.pushed) if t is not None), default=None)
            if image is None:
                return TagRow(tag, None, pushed_at, None, pulled_at=times.pulled)
            total, referrers = await asyncio.gather(
                total_of(image), storage.manifests.referrers(name, image.digest, None)
            )
            return TagRow(tag, image, pushed_at, total, len(referrers), times.pulled)

    return list(await asyncio.gather(*(row(tag) for tag in tags)))


async def _index_size(storage: Storage, name: RepositoryName, index: Image) -> int | None:
    """Every distinct blob of every image the index lists, and the manifests; None when one of
    them cannot be read."""
    blobs: dict[str, int] = {str(index.digest): index.manifest_size}
    for child in index.children:
        try:
            image = await read_image(storage, name, Digest.parse(child.digest))
        except RegistryError:
            return None
        blobs[child.digest] = image.manifest_size
        if image.config_digest is not None:
            blobs[image.config_digest] = image.config_size
        blobs.update((layer.digest, layer.size) for layer in image.layers)
    return sum(blobs.values())


async def referrers_by_type(
    storage: Storage, name: RepositoryName, digest: Digest
) -> dict[str, list[dict[str, Any]]]:
    """The referrers of ``digest`` (signatures, SBOMs, attestations) grouped by artifact type."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for descriptor in await storage.manifests.referrers(name, digest, None):
        kind = descriptor.get("artifactType")
        grouped[kind if isinstance(kind, str) else "unknown"].append(descriptor)
    return dict(sorted(grouped.items()))


def _layer(entry: object) -> Layer:
    if not isinstance(entry, dict):
        return Layer("", "", 0)
    size = entry.get("size")
    return Layer(
        _text(entry.get("mediaType")), _text(entry.get("digest")), size if isinstance(size, int) else 0
    )


def _platform(value: object) -> Platform | None:
    if not isinstance(value, dict):
        return None
    return Platform(_text(value.get("os")), _text(value.get("architecture")), _text(value.get("variant")))


def _configuration(document: dict[str, Any]) -> Configuration:
    container = document.get("config")
    config = container if isinstance(container, dict) else {}
    ports = config.get("ExposedPorts")
    history = document.get("history")
    return Configuration(
        platform=_platform(document) if "architecture" in document else None,
        created=_text(document.get("created")),
        entrypoint=_texts(config.get("Entrypoint")),
        cmd=_texts(config.get("Cmd")),
        env=_texts(config.get("Env")),
        working_dir=_text(config.get("WorkingDir")),
        user=_text(config.get("User")),
        labels=_labels(config.get("Labels")),
        exposed_ports=sorted(_text(port) for port in list(ports)[:MAX_ENTRIES])
        if isinstance(ports, dict)
        else [],
        history=[_history(entry) for entry in history[:MAX_ENTRIES]] if isinstance(history, list) else [],
    )


def _history(entry: object) -> dict[str, str]:
    if not isinstance(entry, dict):
        return {}
    return {
        "created": _text(entry.get("created")),
        "created_by": _text(entry.get("created_by")),
        "comment": _text(entry.get("comment")),
        "empty_layer": "yes" if entry.get("empty_layer") is True else "",
    }


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {_text(key): _text(text) for key, text in sorted(value.items())[:MAX_ENTRIES]}


def _texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [_text(value)]
    if not isinstance(value, list):
        return []
    return [_text(item) for item in value[:MAX_ENTRIES]]


def _text(value: object) -> str:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if value is None:
        return ""
    return json.dumps(value)[:MAX_TEXT]
