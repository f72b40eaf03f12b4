"""Keeping mirrored manifests in the cache: by digest once, by tag revalidated after a window.

A manifest pulled by digest is fetched the first time and served from the cache from then on:
content under a digest never changes. A tag is served from the cache while the upstream
confirmed it less than ``revalidate`` seconds ago; after that a HEAD asks the upstream for the
tag's digest, and only a changed digest fetches the manifest again. When the upstream cannot be
reached, a cached tag is served as it is (with a warning in the log).

Mirrored manifests are stored as the upstream serves them, byte for byte, without requiring
their blobs to be cached: blobs arrive when clients pull them.
"""

from __future__ import annotations

import logging
import time

from storage_drivers import PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, Reference, RepositoryName, Tag
from ..storage import ManifestPolicy, Storage, paths
from ..storage.manifests import Manifests
from .mirrors import Mirror
from .upstream import UpstreamUnavailable

log = logging.getLogger("registry.proxy")

MIRRORED = ManifestPolicy(check_references=False, index_children="none")


class MirroredManifests:
    def __init__(self, driver: StorageDriver, storage: Storage) -> None:
        self._driver = driver
        self._storage = storage
        self._writer = Manifests(driver, storage.blobs, storage.tags, storage.referrers, MIRRORED)

    async def refresh(self, mirror: Mirror, name: RepositoryName, reference: Reference) -> None:
        """Make the cache hold ``reference`` as the upstream has it now, or as cached when the
        upstream cannot say; MANIFEST_UNKNOWN when neither has it."""
        remote = mirror.remote_name(name)
        if not remote:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})
        if isinstance(reference, Digest):
            if not await self._storage.manifests.exists(name, reference):
                await self._fetch(mirror, name, remote, reference, reference)
            return
        cached = await self._cached_tag(name, reference)
        if (
            cached is not None
            and time.time() - await self._checked_at(name, reference) < mirror.upstream.revalidate
        ):
            return
        try:
            current = await mirror.manifest_digest(remote, reference)
            if (
                current is None
                or current != cached
                or not await self._storage.manifests.exists(name, current)
            ):
                await self._fetch(mirror, name, remote, reference, current or reference)
        except UpstreamUnavailable as exc:
            if cached is None:
                raise
            log.warning("serving %s:%s from the cache as it was: %s", name, reference, exc)
            return
        await self._driver.put_content(paths.mirror_tag_checked(name, reference), str(time.time()).encode())

    async def _fetch(
        self, mirror: Mirror, name: RepositoryName, remote: str, reference: Reference, wanted: Reference
    ) -> None:
        """Fetch ``wanted`` (the tag, or the digest the upstream named for it) and store it under
        ``reference``."""
        found = await mirror.manifest(remote, wanted)
        if found is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": str(reference)})
        digest, _ = await self._writer.put(
            name, wanted if isinstance(wanted, Digest) else reference, found.content, found.media_type
        )
        if isinstance(reference, Tag) and isinstance(wanted, Digest):
            await self._storage.tags.tag(name, reference, digest)

    async def _cached_tag(self, name: RepositoryName, tag: Tag) -> Digest | None:
        try:
            return await self._storage.tags.resolve(name, tag)
        except RegistryError:
            return None

    async def _checked_at(self, name: RepositoryName, tag: Tag) -> float:
        try:
            return float(await self._driver.get_content(paths.mirror_tag_checked(name, tag)))
        except (PathNotFound, ValueError):
            return 0.0
