"""Link files: tiny objects that hold a digest and say "this is here"."""

from __future__ import annotations

from storage_drivers import InvalidPath, PathNotFound, StorageDriver

from ..errors import RegistryError
from ..references import Digest
from . import paths


async def read_link(driver: StorageDriver, path: str) -> Digest | None:
    """The digest a link holds, or None when the link is missing or unreadable."""
    try:
        content = await driver.get_content(path)
    except (PathNotFound, InvalidPath):
        return None
    try:
        return Digest.parse(content.decode("ascii", "replace").strip())
    except RegistryError:
        return None  # a torn or foreign file is treated as absent, never as content


async def has_link(driver: StorageDriver, path: str, digest: Digest) -> bool:
    """Whether the link holds ``digest``: as ``read_link`` would find, by comparing its bytes
    (a valid digest reads back as written) rather than parsing them."""
    try:
        content = await driver.get_content(path)
    except (PathNotFound, InvalidPath):
        return False
    return content.strip() == paths.link_content(digest)


async def write_link(
    driver: StorageDriver, path: str, digest: Digest, *, synced: bool = True, like: str | None = None
) -> None:
    """``synced=False``, ``like`` (a link to the same digest; unsynced only): see
    ``StorageDriver.put_content_unsynced``."""
    if synced:
        await driver.put_content(path, paths.link_content(digest))
    else:
        await driver.put_content_unsynced(path, paths.link_content(digest), like=like)
