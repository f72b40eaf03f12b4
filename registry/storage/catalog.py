"""Walking the repositories in lexical order, one page at a time.

A directory below ``repositories/`` is a repository when it holds Distribution's
``_manifests`` (or, for upload purging, ``_uploads``) directory. Directories are
visited through a heap keyed by full name, so names come out in plain string
order (``a``, ``a-b``, ``a/b``) while only the frontier of the walk is in memory,
and subtrees that sort entirely before ``last`` are never listed.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator

from storage_drivers import PathNotFound, StorageDriver

from ..references import RepositoryName, is_repository_name
from . import paths


async def walk_repositories(
    driver: StorageDriver, marker: str, last: str | None = None
) -> AsyncIterator[RepositoryName]:
    """Names (after ``last``) of repositories holding the ``marker`` directory, in order."""
    frontier: list[str] = []
    await _expand(driver, "", frontier, last)
    while frontier:
        name = heapq.heappop(frontier)
        children = await _children(driver, name)
        if children is None:
            continue
        if marker in children and (last is None or name > last):
            yield RepositoryName(name)
        for child in children:
            if not child.startswith("_"):
                _push(frontier, f"{name}/{child}", last)


async def _expand(driver: StorageDriver, name: str, frontier: list[str], last: str | None) -> None:
    for child in await _children(driver, name) or []:
        if not child.startswith("_"):
            _push(frontier, f"{name}/{child}" if name else child, last)


def _push(frontier: list[str], name: str, last: str | None) -> None:
    subtree = name + "/"
    if last is not None and name <= last and subtree < last and not last.startswith(subtree):
        return  # the name and everything below it sort before ``last``
    if is_repository_name(name):  # foreign directories are never repositories
        heapq.heappush(frontier, name)


async def _children(driver: StorageDriver, name: str) -> list[str] | None:
    path = f"{paths.REPOSITORIES}/{name}" if name else paths.REPOSITORIES
    try:
        return [entry.rsplit("/", 1)[1] for entry in await driver.list(path)]
    except PathNotFound:
        return None


class Catalog:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def page(self, limit: int, last: str | None) -> tuple[list[RepositoryName], bool]:
        """Up to ``limit`` repository names after ``last``, and whether more follow."""
        names: list[RepositoryName] = []
        async for name in walk_repositories(self._driver, paths.MANIFESTS_DIR, last):
            if len(names) == limit:
                return names, True
            names.append(name)
        return names, False
