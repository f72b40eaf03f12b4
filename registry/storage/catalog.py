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
from collections.abc import AsyncIterator, Callable, Iterator

from storage_drivers import PathNotFound, StorageDriver

from ..references import RepositoryName, is_repository_name
from . import paths


async def walk_repositories(
    driver: StorageDriver, marker: str, last: str | None = None
) -> AsyncIterator[RepositoryName]:
    """Names (after ``last``) of repositories holding the ``marker`` directory, in order."""
    heap: list[tuple[str, int, Iterator[str]]] = []
    order = itertools.count()

    def enter(names: Iterator[str]) -> None:
        first = next(names, None)
        if first is not None:
            heapq.heappush(heap, (first, next(order), names))

    enter(_subdirectories("", await _children(driver, "") or [], last))
    while heap:
        name, _, siblings = heapq.heappop(heap)
        enter(siblings)
        if not is_repository_name(name):
            continue  # a foreign directory is never a repository
        children = await _children(driver, name)
        if children is None:
            continue  # deleted while walking
        if marker in children and (last is None or name > last):
            yield RepositoryName(name)
        enter(_subdirectories(name, children, last))


def _subdirectories(parent: str, children: list[str], last: str | None) -> Iterator[str]:
    """The full names below ``parent`` in order, without subtrees that sort wholly before ``last``."""
    prefix = f"{parent}/" if parent else ""
    names = sorted(children)  # one parent: full names sort as the names do
    leading: list[str] = []
    start = 0
    if last is not None and last.startswith(prefix):
        rest = last[len(prefix) :]
        start = bisect.bisect_right(names, rest)
        # A name up to ``last`` still leads to names after it when it is a prefix of ``last``'s
        # component here and its subtree sorts after ``last`` ("a/b" > "a.b") or holds it.
        component = rest.split("/", 1)[0]
        for length in range(1, len(component) + 1):
            candidate = component[:length]
            found = bisect.bisect_left(names, candidate, 0, start)
            if found < start and names[found] == candidate:
                subtree = f"{prefix}{candidate}/"
                if subtree > last or last.startswith(subtree):
                    leading.append(candidate)
    # (A parent not on ``last``'s path was entered only because its subtree sorts after ``last``.)
    for name in itertools.chain(leading, itertools.islice(names, start, None)):
        if not name.startswith("_"):
            yield prefix + name


async def _children(driver: StorageDriver, name: str) -> list[str] | None:
    path = paths.repository_tree(name)
    cut = len(path) + 1
    try:
        return [entry[cut:] for entry in await driver.list(path)]
    except PathNotFound:
        return None


class Catalog:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def page(
        self, limit: int, last: str | None, keep: Callable[[str], bool] | None = None
    ) -> tuple[list[RepositoryName], bool]:
        """Up to ``limit`` repository names after ``last`` (those ``keep`` accepts), and whether
        more follow: the walk goes on to the next kept name, so a Link never leads to an empty page."""
        names: list[RepositoryName] = []
        async for name in walk_repositories(self._driver, paths.MANIFESTS_DIR, last):
            if keep is not None and not keep(name):
                continue
            if len(names) == limit:
                return names, True
            names.append(name)
        return names, False
