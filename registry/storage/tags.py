"""Tags: names pointing at manifest digests, with their history as Distribution keeps it."""

from __future__ import annotations

import asyncio

from storage_drivers import PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..lifecycle import records
from ..references import Digest, RepositoryName, Tag
from . import paths
from .links import read_link


class Tags:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def resolve(self, name: RepositoryName, tag: Tag) -> Digest:
        digest = await read_link(self._driver, paths.tag_current_link(name, tag))
        if digest is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"tag": tag})
        return digest

    async def tag(self, name: RepositoryName, tag: Tag, digest: Digest) -> None:
        """Point ``tag`` at ``digest`` and record it in the tag's history."""
        await self._driver.put_contents(self.links(name, tag, digest))

    @staticmethod
    def links(name: RepositoryName, tag: Tag, digest: Digest) -> list[tuple[str, bytes]]:
        """The writes that point ``tag`` at ``digest``, in the order they must appear.

        The current link comes first: a tag's directory appears together with it (drivers make
        an object and its missing directories appear at once), so a listed tag always points
        somewhere, even after a crash between the two writes.
        """
        content = paths.link_content(digest)
        return [
            (paths.tag_current_link(name, tag), content),
            (paths.tag_index_link(name, tag, digest), content),
        ]

    async def untag(self, name: RepositoryName, tag: Tag) -> None:
        """Delete ``tag``, then its push and pull records."""
        try:
            await self._driver.delete(paths.tag(name, tag))
        except PathNotFound:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"tag": tag}) from None
        await records.forget_tag(self._driver, name, tag)

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
        tags, _ = await self.page(name, None, None)
        return tags

    async def page(self, name: RepositoryName, limit: int | None, last: str | None) -> tuple[list[Tag], bool]:
        """Up to ``limit`` tags after ``last`` in lexical order, and whether more follow.

        The tags directory is listed from ``last`` on, a page at a time, so a page costs the
        same however many tags the repository has.
        """
        tags: list[Tag] = []
        after = last
        while limit is None or len(tags) <= limit:
            wanted = None if limit is None else limit + 1 - len(tags)
            entries = await self._listing(name, after, wanted)
            for entry in entries:
                try:
                    tags.append(Tag.parse(entry))
                except RegistryError:
                    continue  # not a tag directory (foreign file)
            if wanted is None or len(entries) < wanted:
                break
            after = entries[-1]
        more = limit is not None and len(tags) > limit
        return tags[:limit], more

    async def _listing(self, name: RepositoryName, after: str | None, limit: int | None) -> list[str]:
        """Names in the repository's tags directory; NAME_UNKNOWN for an unknown repository."""
        directory = paths.tags(name)
        try:
            entries = await self._driver.list(directory, after=after, limit=limit)
        except PathNotFound:
            if await self._repository_exists(name):
                return []
            raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name}) from None
        cut = len(directory) + 1
        return [entry[cut:] for entry in entries]

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
