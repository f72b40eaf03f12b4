"""Deleting a repository: its tags, manifests, referrers index, layer links and uploads. Its blobs
stay until the next garbage collection (another repository may share them).

It runs under the maintenance lease with a "repository condemned" marker, so a push racing it is
either acknowledged before the deletion starts (and then deleted with the name, tags first) or
refused (``guard``); never left half there. Only the repository's own ``_*`` directories go:
``team`` and ``team/app`` are separate repositories, one inside the other's directory.
"""

from __future__ import annotations

import contextlib

from storage_drivers import PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import RepositoryName
from ..storage import paths
from .lease import LeaseBusy, holding

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
    except LeaseBusy as exc:
        raise RegistryError(
            ErrorCode.MAINTENANCE_BUSY, {"holder": str(exc)}, headers={"Retry-After": "30"}
        ) from None
