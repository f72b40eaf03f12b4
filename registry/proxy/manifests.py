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
from .fetches import Fetches
from .mirrors import Mirror
from .upstream import UpstreamUnavailable

log = logging.getLogger("registry.proxy")

MIRRORED = ManifestPolicy(check_references=False, index_children="none")


class MirroredManifests:
    def __init__(self, driver: StorageDriver, storage: Storage, fetches: Fetches) -> None:
        self._driver = driver
        self._storage = storage
        self._fetches = fetches
        self._writer = Manifests(
            driver, storage.blobs, storage.tags, storage.referrers, MIRRORED, guard=storage.guard
        )

    async def refresh(self, mirror: Mirror, name: RepositoryName, reference: Reference) -> None:
        """Make the cache hold ``reference`` as the upstream has it now, or as cached when the
        upstream cannot say; MANIFEST_UNKNOWN when neither has it."""
        remote = mirror.remote_name(name)
        if not remote:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})
        if isinstance(reference, Digest):
            await self._hold(mirror, name, remote, reference)
            return
        cached = await self._cached_tag(name, reference)
        checked = await self._checked_at(name, reference)
        if cached is not None and time.time() - checked < mirror.upstream.revalidate:
            return
        try:
            current = await mirror.manifest_digest(remote, reference)
            if current is None:  # the upstream did not name the digest: fetch by tag
                await self._store(mirror, name, remote, reference)
            elif current != cached or not await self._writer.exists(name, current):
                await self._hold(mirror, name, remote, current)
                await self._storage.tags.tag(name, reference, current)
        except UpstreamUnavailable as exc:
            if cached is None:
                raise
            log.warning("serving %s:%s from the cache as it was: %s", name, reference, exc)
            return
        await self._driver.put_content(paths.mirror_tag_checked(name, reference), str(time.time()).encode())

    async def _hold(self, mirror: Mirror, name: RepositoryName, remote: str, digest: Digest) -> None:
        """Make the repository hold the manifest ``digest``; concurrent requests for it, in any
        worker, make one upstream request (they wait for the first, see ``fetches.py``)."""
        if await self._writer.exists(name, digest):
            return
        await self._fetches.once(
            digest,
            mirror.source(remote),
            lambda: self._store(mirror, name, remote, digest),
            lambda: self._writer.exists(name, digest),
        )
        if not await self._writer.exists(name, digest):
            # The request waited on failed, or stored the manifest in another repository.
            await self._store(mirror, name, remote, digest)

    async def _store(self, mirror: Mirror, name: RepositoryName, remote: str, reference: Reference) -> None:
        """Fetch ``reference`` from the upstream and store it, byte for byte, under ``reference``."""
        found = await mirror.manifest(remote, reference)
        if found is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": str(reference)})
        await self._writer.put(name, reference, found.content, found.media_type)

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
