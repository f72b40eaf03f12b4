"""Walking the repositories in lexical order, one page at a time.

A directory below ``repositories/`` is a repository when it holds Distribution's
``_manifests`` (or, for upload purging, ``_uploads``) directory. The sorted
listings of the directories being walked are merged through a heap keyed by full
name, so names come out in plain string order (``a``, ``a-b``, ``a/b``) while the
heap holds one entry per open directory, and subtrees that sort entirely before
``last`` are never listed.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import AsyncIterator, Callable

from storage_drivers import PathNotFound, StorageDriver

from ..references import RepositoryName, is_repository_name
from . import paths

LISTING_BATCH = 1000
"""Children listed at a time while walking a directory."""


async def walk_repositories(
    driver: StorageDriver, marker: str, last: str | None = None, batch: int = LISTING_BATCH
) -> AsyncIterator[RepositoryName]:
    """Names (after ``last``) of repositories holding the ``marker`` directory, in order.

    Directories are listed ``batch`` children at a time from where ``last`` says, so a page
    of the catalog costs the same however many repositories there are.
    """
    heap: list[tuple[str, int, AsyncIterator[str]]] = []
    order = itertools.count()

    async def enter(names: AsyncIterator[str]) -> None:
        first = await anext(names, None)
        if first is not None:
            heapq.heappush(heap, (first, next(order), names))

    await enter(_subdirectories(driver, "", last, batch))
    while heap:
        name, _, siblings = heapq.heappop(heap)
        await enter(siblings)
        if not is_repository_name(name):
            continue  # a foreign directory is never a repository
        children = await _children(driver, name, None, batch)
        if children is None:
            continue  # deleted while walking
        complete = len(children) < batch
        holds_marker = marker in children or (
            not complete and marker > children[-1] and await _is_directory(driver, f"{name}/{marker}")
        )
        if holds_marker and (last is None or name > last):
            yield RepositoryName(name)
        if not complete or any(not child.startswith("_") for child in children):
            await enter(_subdirectories(driver, name, last, batch, children if complete else None))
        # (Otherwise only the repository's own directories are below it, the usual case.)


async def _subdirectories(
    driver: StorageDriver, parent: str, last: str | None, batch: int, listed: list[str] | None = None
) -> AsyncIterator[str]:
    """The full names below ``parent`` in order, without subtrees that sort wholly before ``last``;
    from ``listed``, its children, when they are already known."""
    prefix = f"{parent}/" if parent else ""
    after = None
    if last is not None and last.startswith(prefix):
        after = last[len(prefix) :]
        for name in _leading(after):
            if not is_repository_name(prefix + name):
                continue  # from a client's ``last``: no repository is stored below it
            if name in listed if listed is not None else await _is_directory(driver, prefix + name):
                yield prefix + name
    # (A parent not on ``last``'s path was entered only because its subtree sorts after ``last``.)
    if listed is not None:
        start = 0 if after is None else bisect.bisect_right(listed, after)
        for name in itertools.islice(listed, start, None):
            if not name.startswith("_"):
                yield prefix + name
        return
    while (names := await _children(driver, parent, after, batch)) is not None:
        for name in names:
            if not name.startswith("_"):
                yield prefix + name
        if len(names) < batch:
            return
        after = names[-1]


def _leading(rest: str) -> list[str]:
    """The names up to ``rest`` (what follows the parent in ``last``) that still lead to names
    after it: its first component, and each start of it followed by "-" or ".", whose subtree
    ("a/...") sorts after "a-b" and "a.b"."""
    component = rest.split("/", 1)[0]
    starts = [component[:i] for i in range(1, len(component)) if component[i] in "-."]
    return [name for name in [*starts, component] if name and not name.startswith("_")]


async def _children(driver: StorageDriver, name: str, after: str | None, limit: int) -> list[str] | None:
    path = paths.repository_tree(name)
    cut = len(path) + 1
    try:
        return [entry[cut:] for entry in await driver.list(path, after=after, limit=limit)]
    except PathNotFound:
        return None


async def _is_directory(driver: StorageDriver, name: str) -> bool:
    return await _children(driver, name, None, 1) is not None


class Catalog:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def page(
        self, limit: int, last: str | None, keep: Callable[[str], bool] | None = None
    ) -> tuple[list[RepositoryName], bool]:
        """Up to ``limit`` repository names after ``last`` (those ``keep`` accepts), and whether
        more follow: the walk goes on to the next kept name, so a Link never leads to an empty page."""
        names: list[RepositoryName] = []
        batch = min(limit + 1, LISTING_BATCH)
        async for name in walk_repositories(self._driver, paths.MANIFESTS_DIR, last, batch):
            if keep is not None and not keep(name):
                continue
            if len(names) == limit:
                return names, True
            names.append(name)
        return names, False
