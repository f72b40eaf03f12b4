"""Test content as exact bytes: blobs, image configs, image manifests, indexes and artifacts.

Every builder returns ``Content`` (bytes plus the media type they are pushed as), so a
test can push it, compare what the registry serves byte for byte, and describe it in a
parent manifest. Random bytes make every blob and manifest unique to its test.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from tests.support.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    digest_of,
)
from tests.support.images import DOCKER_LIST as DOCKER_MANIFEST_LIST

# The media types and digest helper of tests.support.images are part of this module's surface.
__all__ = [
    "ALL_MANIFEST_TYPES",
    "CONFIG_TYPE_OF_IMAGE",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EMPTY",
    "IMAGE_TYPE_OF_LIST",
    "LAYER_TYPE_OF_IMAGE",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "OCI_NONDISTRIBUTABLE_LAYER",
    "Content",
    "Style",
    "blob",
    "digest_of",
    "empty_descriptor",
    "foreign_layer",
    "image_config",
    "image_manifest",
    "index",
    "platform",
    "render",
]

OCI_NONDISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

ALL_MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
IMAGE_TYPE_OF_LIST = {OCI_INDEX: OCI_MANIFEST, DOCKER_MANIFEST_LIST: DOCKER_MANIFEST}
CONFIG_TYPE_OF_IMAGE = {OCI_MANIFEST: OCI_CONFIG, DOCKER_MANIFEST: DOCKER_CONFIG}
LAYER_TYPE_OF_IMAGE = {OCI_MANIFEST: OCI_LAYER, DOCKER_MANIFEST: DOCKER_LAYER}

Style = Literal["compact", "odd"]


@dataclass(frozen=True)
class Content:
    """Bytes pushed under ``media_type``; ``algorithm`` is the digest they are addressed by."""

    data: bytes
    media_type: str = "application/octet-stream"
    algorithm: str = "sha256"

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def addressed_by(self, algorithm: str) -> Content:
        return replace(self, algorithm=algorithm)


def blob(size: int = 64, media_type: str = OCI_LAYER, algorithm: str = "sha256") -> Content:
    return Content(os.urandom(size), media_type, algorithm)


def image_config(
    os_name: str = "linux",
    architecture: str = "amd64",
    media_type: str = OCI_CONFIG,
    algorithm: str = "sha256",
) -> Content:
    document = {
        "architecture": architecture,
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"test.nonce": os.urandom(8).hex()}},
    }
    return Content(render(document), media_type, algorithm)


EMPTY = Content(b"{}", OCI_EMPTY)
"""The OCI empty descriptor's content, the config of artifacts that have none."""


def empty_descriptor() -> dict[str, Any]:
    return EMPTY.descriptor(data=base64.b64encode(EMPTY.data).decode())


def platform(os_name: str = "linux", architecture: str = "amd64") -> dict[str, str]:
    return {"architecture": architecture, "os": os_name}


def render(document: dict[str, Any], style: Style = "compact") -> bytes:
    """JSON bytes; ``odd`` uses tabs, spaces before colons, escaped non-ASCII and a trailing
    newline, so only a registry that keeps the pushed bytes serves them back unchanged."""
    if style == "compact":
        return json.dumps(document, separators=(",", ":")).encode()
    return (
        json.dumps(document, indent="\t", separators=(" ,", " :  "), ensure_ascii=True) + "\n \n"
    ).encode()


def image_manifest(
    config: Content | dict[str, Any],
    layers: Sequence[Content | dict[str, Any]] = (),
    *,
    media_type: str = OCI_MANIFEST,
    subject: Content | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    declare_media_type: bool = True,
    style: Style = "compact",
    algorithm: str = "sha256",
) -> Content:
    """An OCI or Docker schema 2 image manifest (or an OCI artifact, given ``artifact_type``)."""
    document: dict[str, Any] = {"schemaVersion": 2}
    if declare_media_type:
        document["mediaType"] = media_type
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = config.descriptor() if isinstance(config, Content) else config
    document["layers"] = [item.descriptor() if isinstance(item, Content) else item for item in layers]
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = annotations
    return Content(render(document, style), media_type, algorithm)


def index(
    manifests: Sequence[dict[str, Any]],
    *,
    media_type: str = OCI_INDEX,
    subject: Content | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    style: Style = "compact",
    algorithm: str = "sha256",
) -> Content:
    """An OCI image index or Docker manifest list of the given child descriptors."""
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["manifests"] = list(manifests)
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = annotations
    return Content(render(document, style), media_type, algorithm)


def foreign_layer(url: str, media_type: str = OCI_NONDISTRIBUTABLE_LAYER) -> dict[str, Any]:
    """A non-distributable layer descriptor: clients fetch it from ``url``; nobody pushes it."""
    return blob(32, media_type).descriptor(urls=[url])
