"""What a manifest is: media types, strict JSON parsing, and the references to check.

Pure functions, no I/O. The registry stores the exact bytes it was given; this
module only decides whether they are acceptable and what they point at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ErrorCode, RegistryError
from ..references import Digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_MANIFESTS | INDEXES

NON_DISTRIBUTABLE_LAYERS = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
"""Layers clients fetch from their ``urls``; the registry need not hold them."""

MAX_SIZE = 1 << 63
"""Descriptor sizes are int64 in the image spec; larger ones overflow other registries' clients."""

_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream"})
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    platform: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    """Config and layers the repository must hold."""
    foreign_urls: tuple[str, ...] = ()
    """URLs of non-distributable layers, checked against the url policy instead."""
    children: tuple[Descriptor, ...] = ()
    """Manifests an index lists."""
    subject: Descriptor | None = None
    artifact_type: str | None = None
    """As the referrers API reports it: ``artifactType``, else (image manifests) the config's type."""
    annotations: dict[str, str] = field(default_factory=dict)


def invalid(reason: str) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, {"reason": reason})


def media_type_of(content_type: str | None) -> str:
    """The bare media type of a Content-Type header (parameters dropped)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Validate a pushed manifest and say what it references; MANIFEST_INVALID otherwise."""
    return _manifest_of(_load_json(body), content_type)


def parse_stored_manifest(body: bytes) -> Manifest:
    """``parse_manifest(body, stored_media_type(body))``, reading the JSON once."""
    document = _load_json(body)
    return _manifest_of(document, _declared_media_type(document))


def _manifest_of(document: dict[str, Any], content_type: str | None) -> Manifest:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise invalid("mediaType must be a string")
    header_type = media_type_of(content_type)
    media_type = _decide_media_type(header_type, declared, document)
    if type(document.get("schemaVersion")) is not int or document["schemaVersion"] != 2:
        raise invalid("schemaVersion must be 2")
    if media_type in IMAGE_MANIFESTS:
        return _image_manifest(media_type, document)
    return _index(media_type, document)


def stored_media_type(body: bytes) -> str:
    """The media type of a stored manifest, read back from its bytes as Distribution does."""
    try:
        document = json.loads(body)
    except ValueError:
        return OCI_MANIFEST
    return _declared_media_type(document) if isinstance(document, dict) else OCI_MANIFEST


def _declared_media_type(document: dict[str, Any]) -> str:
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def _decide_media_type(header_type: str, declared: str | None, document: dict[str, Any]) -> str:
    if header_type in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1:
        raise invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if header_type not in _GENERIC_TYPES:
        if header_type not in MANIFEST_TYPES:
            raise invalid(f"unsupported manifest media type {header_type[:100]!r}")
        if declared is not None and declared != header_type:
            raise invalid("mediaType in the manifest does not match the Content-Type header")
        if declared is None and header_type in {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}:
            raise invalid("Docker manifests must declare their mediaType")
        return header_type
    if declared is not None:
        if declared not in MANIFEST_TYPES:
            raise invalid(f"unsupported manifest media type {declared[:100]!r}")
        return declared
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def _image_manifest(media_type: str, document: dict[str, Any]) -> Manifest:
    if "manifests" in document:
        raise invalid("an image manifest cannot list manifests")
    config = _descriptor(_require(document, "config", dict), "config")
    layers = [_descriptor(item, "layers[]") for item in _require(document, "layers", list)]
    blobs = [config]
    foreign_urls: list[str] = []
    for layer in layers:
        if layer.media_type in NON_DISTRIBUTABLE_LAYERS and layer.urls:
            foreign_urls += layer.urls
        else:
            blobs.append(layer)
            foreign_urls += layer.urls
    artifact_type = _optional_string(document, "artifactType")
    return Manifest(
        media_type=media_type,
        blobs=tuple(blobs),
        foreign_urls=tuple(foreign_urls),
        subject=_subject(document),
        artifact_type=artifact_type or config.media_type,
        annotations=_annotations(document),
    )


def _index(media_type: str, document: dict[str, Any]) -> Manifest:
    if "layers" in document or "config" in document:
        raise invalid("an index cannot have layers or a config")
    children = [_descriptor(item, "manifests[]") for item in _require(document, "manifests", list)]
    return Manifest(
        media_type=media_type,
        children=tuple(children),
        subject=_subject(document),
        artifact_type=_optional_string(document, "artifactType"),
        annotations=_annotations(document),
    )


def _subject(document: dict[str, Any]) -> Descriptor | None:
    subject = document.get("subject")
    if subject is None:
        return None
    if not isinstance(subject, dict):
        raise invalid("subject must be a descriptor")
    return _descriptor(subject, "subject")


def _descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise invalid(f"{where}.mediaType is missing or not a media type")
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise invalid(f"{where}.digest is missing")
    try:
        digest = Digest.parse(raw_digest)
    except RegistryError:
        raise invalid(f"{where}.digest {raw_digest[:150]!r} is not a supported digest") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < MAX_SIZE:
        raise invalid(f"{where}.size must be an integer from 0 to 2^63-1")
    urls = value.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise invalid(f"{where}.urls must be a list of strings")
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise invalid(f"{where}.platform must be an object")
    _annotations(value)
    return Descriptor(media_type, digest, size, tuple(urls), platform)


def _annotations(document: dict[str, Any]) -> dict[str, str]:
    annotations = document.get("annotations")
    if annotations is None:
        return {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise invalid("annotations must map strings to strings")
    return annotations


def _optional_string(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{key} must be a string")
    return value or None


def _require(document: dict[str, Any], key: str, kind: type) -> Any:
    value = document.get(key)
    if not isinstance(value, kind):
        raise invalid(f"{key} is missing or not a{'n object' if kind is dict else ' list'}")
    return value


def check_urls(
    urls: Sequence[str], allow: Sequence[re.Pattern[str]], deny: Sequence[re.Pattern[str]]
) -> None:
    """Non-distributable layer URLs must be http(s), without fragment, allowed and not denied."""
    for url in urls:
        parts = urlsplit(url)
        if (
            parts.scheme not in {"http", "https"}
            or parts.fragment
            or (allow and not any(p.search(url) for p in allow))
            or any(p.search(url) for p in deny)
        ):
            raise invalid(f"layer URL {url[:200]!r} is not allowed")


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(
            body.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except UnicodeDecodeError:
        raise invalid("manifest is not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # the C parser bounds nesting depth itself
        raise invalid(f"manifest is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise invalid("manifest must be a JSON object")
    return document


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:100]!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
