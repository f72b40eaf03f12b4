"""The storage services composed over one driver (``Storage``), and how a capability wraps
them (``Wrappers``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from storage_drivers import PathNotFound, StorageDriver

from ..references import RepositoryName
from . import paths
from .blobs import BlobStore
from .catalog import Catalog, walk_repositories
from .descriptors import CachedBlobs, DescriptorCache
from .manifests import ManifestPolicy, Manifests
from .referrers import Referrers
from .services import BlobService, ManifestService
from .tags import Tags
from .uploads import Uploads

STAGED_WRITE_AGE = 3600.0
"""Seconds since its last write past which a staged file outside the uploads is a dead writer's:
a live one (a blob's move, a record's write, a mirror's download, which fails after 30 s without
bytes) writes it within seconds. Upload purging's ``age`` may be shorter: it bounds uploads."""


if TYPE_CHECKING:
    from ..lifecycle.guard import PushGuard


_Service = TypeVar("_Service")


def _unchanged(service: _Service) -> _Service:
    return service


@dataclass(frozen=True, slots=True)
class Wrappers:
    """How a capability wraps (or replaces) storage services: each is given the service as the
    registry builds it and returns the one every handler and every other service uses."""

    blobs: Callable[[BlobService], BlobService] = _unchanged
    manifests: Callable[[ManifestService], ManifestService] = _unchanged


class Storage:
    """Every storage service over one driver, composed once: a wrapped service is also what the
    services built on it use (uploads finish into the wrapped blob store, manifests check and
    reference blobs through it). ``guard`` is the manifest push's side of garbage collection
    (``registry.lifecycle.guard``), given by whoever assembles the registry: the lifecycle is
    built on storage, not the other way round.

    With a ``descriptors`` cache, what clients read answers from it where it can: ``blobs`` is
    the wrapped blob service behind the cache, while uploads and manifest pushes use the wrapped
    one directly, so every check a write decides on reads storage (``descriptors``)."""

    def __init__(
        self,
        driver: StorageDriver,
        guard: PushGuard,
        policy: ManifestPolicy | None = None,
        wrappers: Wrappers | None = None,
        descriptors: DescriptorCache | None = None,
    ) -> None:
        wrap = wrappers or Wrappers()
        self.driver = driver
        self.guard = guard
        self.descriptors = descriptors
        blobs = wrap.blobs(BlobStore(driver))
        self.uploads = Uploads(driver, blobs)
        self.tags = Tags(driver)
        self.referrers = Referrers(driver)
        self.manifests = wrap.manifests(
            Manifests(
                driver,
                blobs,
                self.tags,
                self.referrers,
                policy or ManifestPolicy(),
                guard=guard,
                descriptors=descriptors,
            )
        )
        self.blobs: BlobService = blobs if descriptors is None else CachedBlobs(blobs, descriptors)
        self.catalog = Catalog(driver)

    def forget_repository(self, name: RepositoryName) -> None:
        """After ``name`` was deleted: this worker's descriptor cache drops what it knew of it."""
        if self.descriptors is not None:
            self.descriptors.forget_repository(name)

    async def purge_uploads(self, age: float, dry_run: bool = False) -> list[str]:
        """Delete uploads started more than ``age`` seconds ago in every repository, and what
        the driver keeps of unfinished writes that old (S3 multipart uploads, files a writer
        killed mid-write staged beside their targets): in the repositories, and, at least
        STAGED_WRITE_AGE old, beside the blobs and the registry's own records."""
        older_than = time.time() - age
        purged: list[str] = []
        async for name in walk_repositories(self.driver, paths.UPLOADS_DIR):
            purged += await self.uploads.purge(name, older_than, dry_run)
        if not dry_run:
            await self.driver.purge_incomplete(paths.REPOSITORIES, age)
            await self.purge_staged_writes(age)
        return purged

    async def purge_staged_writes(self, age: float = STAGED_WRITE_AGE) -> int:
        """Delete what writers killed mid-write left beside the blobs and in the registry's own
        records (staged files, S3 multipart copies) at least STAGED_WRITE_AGE old; how many.

        Done with upload purging, and without it too: nothing live is that old there, and a
        blob's staged copy is as large as the blob. The repositories' leftovers wait for upload
        purging, whose switch they follow: there a driver's unfinished writes are upload
        sessions (S3's multipart uploads) the operator may keep, and staged link writes are a
        few bytes each."""
        removed = 0
        for path in (paths.BLOBS, paths.DOCKYARD):
            removed += await self.driver.purge_incomplete(path, max(age, STAGED_WRITE_AGE))
        return removed

    async def check(self) -> None:
        """Raise when the storage cannot be reached (a missing root is fine: nothing pushed yet)."""
        with contextlib.suppress(PathNotFound):
            await self.driver.stat(paths.ROOT)
