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


SCAN_BATCH = 1000
"""Keys read at a time where the driver scans keys (S3: one call's worth)."""


async def scan_repositories(
    driver: StorageDriver, marker: str, last: str | None = None, walk_batch: int = LISTING_BATCH
) -> AsyncIterator[RepositoryName]:
    """What ``walk_repositories`` gives, from the driver's ``scan`` of the keys below the
    repositories where it has one (on S3 a call per up to a thousand keys rather than one per
    repository), else from that walk (listing ``walk_batch`` children at a time).

    The first scan reads about as many keys as ``walk_batch`` names, the next ones as many as the
    keys per name found so far suggest for another ``walk_batch`` names (on S3 a key costs about
    70 µs of the server's CPU to parse: a page of the catalog reads no more than it needs).

    A key names its repository by its components up to the first that starts with "_"; the
    repository holds ``marker`` when that component is it. Keys come in byte order, not in the
    names' order: "a/_manifests/..." sorts after "a-b/...", "a.b/..." and "a/0/...", though "a"
    comes first. So a name is given only once every name that sorts before it is known: the only
    ones keys still unread can bring are starts of it that end before "-", "." or "/" and a
    digit, and those the keys read so far do not settle are looked up. Every key of a name after
    ``last`` sorts after ``last`` itself, so the scan starts there.
    """
    scan = _Scan(driver, marker, last)
    root = paths.repository_tree("")
    cut = len(root) + 1
    exhausted = False
    batch, read = min(SCAN_BATCH, walk_batch + 1), 0
    while not exhausted:
        keys = await driver.scan(root, scan.read_to, batch)
        if keys is None:  # the driver has no such listing: walk the directories
            async for name in walk_repositories(driver, marker, last, walk_batch):
                yield name
            return
        exhausted = len(keys) < batch
        for key in keys:
            scan.read(key[cut:])
        read += len(keys)
        batch = min(SCAN_BATCH, max(batch, walk_batch * read // max(len(scan.seen), 1) * 5 // 4))
        while scan.pending:
            if not exhausted and await scan.found_starts(scan.pending[0]):
                continue  # a start of it is a repository too: that comes first
            yield RepositoryName(heapq.heappop(scan.pending))


class _Scan:
    """What a scan of the repositories' keys has found so far."""

    def __init__(self, driver: StorageDriver, marker: str, last: str | None) -> None:
        self.driver = driver
        self.marker = marker
        self.last = last
        self.read_to = last or ""
        """Every key up to here (relative to the repositories) has been read or skipped."""
        self.seen: set[str] = set()
        """Names found (given or pending) or looked up."""
        self.pending: list[str] = []
        """A heap of the names found and not yet given."""

    def read(self, relative: str) -> None:
        """Take in a key, the last read so far."""
        name, inner = _repository_of(relative)
        wanted = self.last is None or name > self.last
        if inner == self.marker and name not in self.seen and wanted and is_repository_name(name):
            self.seen.add(name)
            heapq.heappush(self.pending, name)
        self.read_to = self._skip(relative, name, inner)

    def _skip(self, relative: str, name: str, inner: str | None) -> str:
        """Where the next scan may start after the key ``relative``: past the rest of the
        directory of the registry's own it is in, or of all of them once its repository is
        settled. The keys skipped belong to that one repository, so a large repository costs a
        call or two, not one per thousand of its keys."""
        if inner is None:
            return relative
        below = f"{name}/" if name else ""
        if name in self.seen or inner > self.marker or not is_repository_name(name):
            return max(relative, f"{below}_~")  # "~" sorts after every character of a component
        return max(relative, f"{below}{inner}/~")

    async def found_starts(self, name: str) -> bool:
        """Look up the starts of ``name`` that come before it but whose keys sort after those
        read so far; add those that are repositories to the pending names, and say whether any
        was."""
        found = False
        for index, character in enumerate(name):
            if not (character in "-." or (character == "/" and name[index + 1 : index + 2].isdigit())):
                continue
            start = name[:index]
            keys = f"{start}/{self.marker}/"
            if start in self.seen or (self.last is not None and start <= self.last):
                continue
            if self.read_to[: len(keys)] > keys or not is_repository_name(start):
                continue  # its keys were read (it would be in seen), or it cannot be one
            self.seen.add(start)
            if await _is_directory(self.driver, f"{start}/{self.marker}"):
                heapq.heappush(self.pending, start)
                found = True
        return found


def _repository_of(relative: str) -> tuple[str, str | None]:
    """The name a key below the repositories belongs to, and the component after it (None for a
    key of no repository)."""
    components = relative.split("/")
    for index, component in enumerate(components):
        if component.startswith("_"):
            return "/".join(components[:index]), component
    return relative, None


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
        async for name in scan_repositories(self._driver, paths.MANIFESTS_DIR, last, batch):
            if keep is not None and not keep(name):
                continue
            if len(names) == limit:
                return names, True
            names.append(name)
        return names, False
