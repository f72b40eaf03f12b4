"""Test images built in Python: random layers, configs, manifests, indexes, on-disk layouts.

Every layer holds fresh random bytes, so each run pushes digests no registry has seen. Images are
written as OCI image layouts (``oci:DIR:REF`` for skopeo) or docker-archive tars (``docker save``
format), so clients copy them into a registry without building or running anything.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True)
class Blob:
    """Bytes with the media type they are referenced by."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


def json_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of regular files (fixed owner and mtime: only the content varies)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def random_files(count: int, size: int, prefix: str = "data") -> dict[str, bytes]:
    return {f"{prefix}/{os.urandom(6).hex()}.bin": os.urandom(size) for _ in range(count)}


@dataclass(frozen=True)
class Layer:
    """A gzip layer blob and the digest of its uncompressed tar (the config's diff_id)."""

    blob: Blob
    diff_id: str
    files: dict[str, bytes]


def random_layer(media_type: str = OCI_LAYER, files: int = 2, size: int = 128 * 1024) -> Layer:
    content = random_files(files, size)
    tar = tar_bytes(content)
    compressed = gzip.compress(tar, compresslevel=1, mtime=0)
    return Layer(Blob(media_type, compressed), digest_of(tar), content)


@dataclass(frozen=True)
class Image:
    """One single-platform image: manifest, config and layers."""

    manifest: Blob
    config: Blob
    layers: list[Layer]
    platform: dict[str, str] = field(default_factory=dict)

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *(layer.blob for layer in self.layers)]

    @property
    def digest(self) -> str:
        return self.manifest.digest


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index or Docker manifest list over several images."""

    manifest: Blob
    images: list[Image]

    @property
    def digest(self) -> str:
        return self.manifest.digest


def random_image(
    layers: int = 3,
    layer_size: int = 128 * 1024,
    architecture: str = "amd64",
    variant: str = "",
    docker: bool = False,
) -> Image:
    """An image of ``layers`` random layers, in OCI media types or Docker schema 2 ones."""
    made = [random_layer(DOCKER_LAYER if docker else OCI_LAYER, size=layer_size) for _ in range(layers)]
    platform = {"architecture": architecture, "os": "linux"}
    if variant:
        platform["variant"] = variant
    config = Blob(
        DOCKER_CONFIG if docker else OCI_CONFIG,
        json_bytes(
            {
                **platform,
                "config": {"Env": ["PATH=/bin"], "Labels": {"test.nonce": os.urandom(8).hex()}},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in made]},
            }
        ),
    )
    manifest = Blob(
        DOCKER_MANIFEST if docker else OCI_MANIFEST,
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.blob.descriptor() for layer in made],
            }
        ),
    )
    return Image(manifest, config, made, platform)


def image_index(images: list[Image], docker: bool = False) -> ImageIndex:
    """An index (or Docker manifest list) whose entries carry each image's platform."""
    media_type = DOCKER_LIST if docker else OCI_INDEX
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [image.manifest.descriptor(platform=image.platform) for image in images],
    }
    return ImageIndex(Blob(media_type, json_bytes(document)), images)


def multi_arch_index(layers: int = 2, docker: bool = False) -> ImageIndex:
    """amd64 + arm64/v8 + arm/v7 images under one index."""
    platforms = [("amd64", ""), ("arm64", "v8"), ("arm", "v7")]
    return image_index(
        [
            random_image(layers, architecture=arch, variant=variant, docker=docker)
            for arch, variant in platforms
        ],
        docker=docker,
    )


EMPTY_CONFIG = Blob("application/vnd.oci.empty.v1+json", b"{}")


def artifact(subject: Blob, artifact_type: str, annotations: Mapping[str, str]) -> Image:
    """An OCI 1.1 artifact referring to ``subject``: the empty config, one random payload blob."""
    payload = Blob(artifact_type, os.urandom(4096))
    manifest = Blob(
        OCI_MANIFEST,
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": EMPTY_CONFIG.descriptor(),
                "layers": [payload.descriptor()],
                "subject": subject.descriptor(),
                "annotations": dict(annotations),
            }
        ),
    )
    # The payload is stored as is, uncompressed: its own digest is its diff ID.
    return Image(manifest, EMPTY_CONFIG, [Layer(payload, payload.digest, {})])


def referrer_descriptor(referrer: Image) -> dict[str, Any]:
    """The descriptor of ``referrer`` as a referrers list carries it."""
    document = json.loads(referrer.manifest.data)
    extra = {"annotations": document["annotations"]} if document.get("annotations") else {}
    return referrer.manifest.descriptor(artifactType=document["artifactType"], **extra)


def referrers_tag(digest: str) -> str:
    """The tag where clients keep the referrers of ``digest`` when a registry has no referrers API."""
    algorithm, encoded = digest.split(":", 1)
    return f"{algorithm[:32]}-{encoded[:64]}"


def referrers_tag_index(referrers: list[Image]) -> ImageIndex:
    """The index clients push to the referrers tag (the OCI 1.1 fallback)."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [referrer_descriptor(referrer) for referrer in referrers],
    }
    return ImageIndex(Blob(OCI_INDEX, json_bytes(document)), referrers)


def every_blob(content: Image | ImageIndex) -> list[Blob]:
    """Every manifest and blob of ``content``, children before the manifests that refer to them."""
    if isinstance(content, Image):
        return [*content.blobs, content.manifest]
    return [blob for image in content.images for blob in every_blob(image)] + [content.manifest]


def write_oci_layout(path: Path, refs: Mapping[str, Image | ImageIndex]) -> Path:
    """An OCI image layout at ``path`` with each item tagged by its ref name (``oci:PATH:REF``)."""
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    for ref, content in refs.items():
        for blob in every_blob(content):
            (blobs_dir / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
        annotations = {"org.opencontainers.image.ref.name": ref}
        index["manifests"].append(content.manifest.descriptor(annotations=annotations))
    (path / "index.json").write_bytes(json_bytes(index))
    return path


def write_docker_archive(path: Path, image: Image, repo_tag: str) -> Path:
    """A ``docker save`` tar: uncompressed layers, the config, and manifest.json."""
    config_name = image.config.digest.removeprefix("sha256:") + ".json"
    members: dict[str, bytes] = {config_name: image.config.data}
    layer_names = []
    for layer in image.layers:
        name = f"{layer.diff_id.removeprefix('sha256:')}/layer.tar"
        members[name] = gzip.decompress(layer.blob.data)
        layer_names.append(name)
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
    members["manifest.json"] = json.dumps(manifest).encode()
    path.write_bytes(tar_bytes(members))
    return path


def busybox_rootfs_tar(path: Path, extra_files: Mapping[str, bytes]) -> Path:
    """A root filesystem tar: static busybox as /bin/busybox and /bin/sh, plus ``extra_files``."""
    busybox = Path("/bin/busybox").read_bytes()
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as archive:
        binary = tarfile.TarInfo("bin/busybox")
        binary.size, binary.mode = len(busybox), 0o755
        archive.addfile(binary, io.BytesIO(busybox))
        shell = tarfile.TarInfo("bin/sh")
        shell.type, shell.linkname = tarfile.SYMTYPE, "busybox"
        archive.addfile(shell)
        for name, content in extra_files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return path


def write_dir_layout(path: Path, content: Image | ImageIndex) -> Path:
    """skopeo's ``dir:`` format: manifest.json, child manifests as HEX.manifest.json, blobs as HEX.

    Unlike an OCI layout it holds Docker manifest lists as well as OCI indexes.
    """
    path.mkdir(parents=True, exist_ok=True)
    (path / "version").write_text("Directory Transport Version: 1.1\n")
    (path / "manifest.json").write_bytes(content.manifest.data)
    images = content.images if isinstance(content, ImageIndex) else [content]
    for image in images:
        if image is not content:
            hex_digest = image.digest.removeprefix("sha256:")
            (path / f"{hex_digest}.manifest.json").write_bytes(image.manifest.data)
        for blob in image.blobs:
            (path / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    return path


def read_dir_layout(path: Path) -> set[str]:
    """Digests of every manifest and blob in a ``dir:`` layout, each checked against its name."""
    digests = set()
    for file in path.iterdir():
        if file.name == "version":
            continue
        digest = digest_of(file.read_bytes())
        if file.name != "manifest.json":
            assert digest == "sha256:" + file.name.removesuffix(".manifest.json"), file
        digests.add(digest)
    return digests
