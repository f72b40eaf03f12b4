"""The referrers index: for each subject digest, the descriptors of manifests that refer to it.

Kept beside Distribution's layout (see ``paths``), written when a manifest with a
``subject`` is pushed, removed when it is deleted; entries whose manifest has
gone (deleted by another registry on the same storage) are filtered on read.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from storage_drivers import PathNotFound, StorageDriver

from ..errors import RegistryError
from ..references import Digest, RepositoryName
from . import paths
from .links import has_link
from .manifest_format import Manifest


def descriptor_of(manifest: Manifest, digest: Digest, size: int) -> dict[str, Any]:
    """The descriptor the referrers API lists for ``manifest``."""
    descriptor: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": str(digest),
        "size": size,
    }
    if manifest.artifact_type:
        descriptor["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        descriptor["annotations"] = manifest.annotations
    return descriptor


class Referrers:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def add(self, name: RepositoryName, subject: Digest, descriptor: dict[str, Any]) -> None:
        await self._driver.put_content(*self.entry(name, subject, descriptor))

    @staticmethod
    def entry(name: RepositoryName, subject: Digest, descriptor: dict[str, Any]) -> tuple[str, bytes]:
        """The write that lists ``descriptor`` among the referrers of ``subject``."""
        digest = Digest.parse(descriptor["digest"])
        return paths.referrer(name, subject, digest), json.dumps(
            descriptor, separators=(",", ":"), sort_keys=True
        ).encode()

    async def remove(self, name: RepositoryName, subject: Digest, digest: Digest) -> None:
        with contextlib.suppress(PathNotFound):  # never indexed, or removed already
            await self._driver.delete(paths.referrer(name, subject, digest))

    async def list(
        self, name: RepositoryName, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests pushed to ``name`` with the subject ``subject``."""
        base = paths.referrers(name, subject)
        try:
            algorithms = await self._driver.list(base)
        except PathNotFound:
            return []
        found = []
        for algorithm_dir in algorithms:
            try:
                entries = await self._driver.list(algorithm_dir)
            except PathNotFound:
                continue
            for entry in entries:
                descriptor = await self._read(name, entry)
                if descriptor is None:
                    continue
                if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                    found.append(descriptor)
        return found

    async def _read(self, name: RepositoryName, path: str) -> dict[str, Any] | None:
        try:
            descriptor = json.loads(await self._driver.get_content(path))
            digest = Digest.parse(descriptor["digest"])
        except (PathNotFound, ValueError, KeyError, TypeError, RegistryError):
            return None
        if not await has_link(self._driver, paths.manifest_revision_link(name, digest), digest):
            return None
        return descriptor if isinstance(descriptor, dict) else None
