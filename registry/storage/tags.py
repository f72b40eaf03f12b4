"""Tags: names pointing at manifest digests, with their history as Distribution keeps it."""

from __future__ import annotations

import asyncio
import bisect

from storage_drivers import PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName, Tag
from . import paths
from .links import read_link, write_link


class Tags:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def resolve(self, name: RepositoryName, tag: Tag) -> Digest:
        digest = await read_link(self._driver, paths.tag_current_link(name, tag))
        if digest is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"tag": tag})
        return digest

    async def tag(self, name: RepositoryName, tag: Tag, digest: Digest) -> None:
        """Point ``tag`` at ``digest``, then record it in the tag's history.

        The current link comes first: a tag's directory appears together with it (drivers make
        an object and its missing directories appear at once), so a listed tag always points
        somewhere, even after a crash between the two writes.
        """
        await write_link(self._driver, paths.tag_current_link(name, tag), digest)
        await write_link(self._driver, paths.tag_index_link(name, tag, digest), digest)

    async def untag(self, name: RepositoryName, tag: Tag) -> None:
        try:
            await self._driver.delete(paths.tag(name, tag))
        except PathNotFound:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"tag": tag}) from None

    async def pushed_at(self, name: RepositoryName, tag: Tag) -> float | None:
        """When ``tag`` was last pointed at a manifest (its current link's modification time, in
        seconds since the epoch); None when the tag is gone."""
        try:
            return (await self._driver.stat(paths.tag_current_link(name, tag))).modified
        except PathNotFound:
            return None

    async def all_names(self, name: RepositoryName) -> list[Tag]:
        """Every valid tag name stored for the repository, sorted; NAME_UNKNOWN when none could
        ever have been pushed (no manifests directory)."""
        try:
            entries = await self._driver.list(paths.tags(name))
        except PathNotFound:
            if await self._repository_exists(name):
                return []
            raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name}) from None
        names = []
        for entry in entries:
            candidate = entry.rsplit("/", 1)[1]
            try:
                names.append(Tag.parse(candidate))
            except RegistryError:
                continue  # not a tag directory (foreign file)
        names.sort()
        return names

    async def page(self, name: RepositoryName, limit: int | None, last: str | None) -> tuple[list[Tag], bool]:
        """Up to ``limit`` tags after ``last`` in lexical order, and whether more follow."""
        tags = await self.all_names(name)
        start = bisect.bisect_right(tags, last) if last is not None else 0
        end = len(tags) if limit is None else start + limit
        return tags[start:end], end < len(tags)

    async def pointing_at(self, name: RepositoryName, digest: Digest) -> list[Tag]:
        tags = await self.all_names(name)
        targets = await asyncio.gather(
            *(read_link(self._driver, paths.tag_current_link(name, t)) for t in tags)
        )
        return [tag for tag, target in zip(tags, targets, strict=True) if target == digest]

    async def _repository_exists(self, name: RepositoryName) -> bool:
        try:
            await self._driver.stat(paths.manifests(name))
        except PathNotFound:
            return False
        return True
