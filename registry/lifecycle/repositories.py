"""Deleting a repository: its tags, manifests, referrers index, layer links and uploads. Its blobs
stay until the next garbage collection (another repository may share them). A repository whose
last manifest and tag were deleted leaves the catalog the same way.

It runs under the maintenance lease with a "repository condemned" marker, so a push racing it is
either acknowledged before the deletion starts (and then deleted with the name, tags first) or
waits for the deletion to end and is refused when its links went with it (``guard``); never
left half there. Only the repository's own ``_*`` directories go:
``team`` and ``team/app`` are separate repositories, one inside the other's directory.
"""

from __future__ import annotations

import contextlib
import logging

from storage_drivers import PathNotFound, StorageDriver, StorageError

from ..errors import ErrorCode, RegistryError
from ..references import RepositoryName
from ..storage import paths
from .lease import Lease, LeaseBusy, LeaseLost, holding, try_take

log = logging.getLogger("registry")

HTTP_WAIT = 10.0
"""How long a DELETE request waits for a running garbage collection before answering 503."""


async def exists(driver: StorageDriver, name: RepositoryName) -> bool:
    for directory in (paths.manifests(name), paths.layers(name), paths.uploads(name)):
        with contextlib.suppress(PathNotFound):
            await driver.stat(directory)
            return True
    return False


async def delete_repository(driver: StorageDriver, name: RepositoryName, wait: float) -> None:
    """NAME_UNKNOWN when there is no such repository; MAINTENANCE_BUSY when another run holds the
    lease for longer than ``wait`` seconds."""
    if not await exists(driver, name):
        raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})
    try:
        async with holding(driver, "delete-repository", wait) as lease:
            await driver.put_content(paths.gc_condemned_repository(lease.run, name), b"")
            order = (paths.tags(name), paths.manifests(name), paths.repository_extras(name))
            for directory in (*order, paths.layers(name), paths.uploads(name)):
                await lease.check()
                with contextlib.suppress(PathNotFound):
                    await driver.delete(directory)
            with contextlib.suppress(PathNotFound):
                await driver.delete(paths.gc_run(lease.run))
    except (LeaseBusy, LeaseLost) as exc:
        raise RegistryError(
            ErrorCode.MAINTENANCE_BUSY, {"holder": str(exc)}, headers={"Retry-After": "30"}
        ) from None


async def forget_if_empty(driver: StorageDriver, name: RepositoryName) -> None:
    """After a manifest or tag was deleted: take ``name`` out of the catalog when it has no manifest
    and no tag left. Best effort: while another run holds the lease, the next collection does it."""
    try:
        if not await _is_empty(driver, name):
            return
        lease = await try_take(driver, "forget-empty-repository")
        try:
            await remove_if_empty(lease, name)
            with contextlib.suppress(PathNotFound):
                await driver.delete(paths.gc_run(lease.run))
        finally:
            await lease.release()
    except (LeaseBusy, LeaseLost):
        return
    except StorageError as exc:  # the delete the client asked for is done; collection finishes this
        log.warning("could not take the empty repository %s out of the catalog: %s", name, exc)


async def remove_if_empty(lease: Lease, name: RepositoryName) -> bool:
    """Under a held lease: drop ``name``'s manifests directory (what puts it in the catalog) when it
    holds no revision and no tag. The marker is written before the second look, so a push that
    finished before it is seen there, and a push that checks after it waits for the outcome: the
    marker removed (the repository stays), or the run's end (``guard``)."""
    driver = lease.driver
    marker = paths.gc_condemned_repository(lease.run, name)
    await driver.put_content(marker, b"")
    if not await _is_empty(driver, name):
        await driver.delete(marker)
        return False
    await lease.check()
    for directory in (paths.manifests(name), paths.repository_extras(name)):
        with contextlib.suppress(PathNotFound):
            await driver.delete(directory)
    return True


async def _is_empty(driver: StorageDriver, name: RepositoryName) -> bool:
    try:
        async for info in driver.walk(paths.manifests(name)):
            if isinstance(paths.parse(info.path), paths.ManifestRevisionLink | paths.TagCurrentLink):
                return False
    except PathNotFound:
        return False  # not a repository (or already out of the catalog)
    return True
