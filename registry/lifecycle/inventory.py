"""The inventory garbage collection, retention and usage figures work from: one walk of the
storage listing every blob, repository, revision, tag and layer link with the times and sizes the
run needs, and what each manifest refers to (``take_inventory``)."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from storage_drivers import FileInfo, PathNotFound, StorageDriver

from ..errors import RegistryError
from ..references import HEX_LENGTHS, Digest, RepositoryName, Tag, is_repository_name
from ..storage import paths
from . import shares
from .digests import BlobTable, from_raw, raw
from .manifest_references import References, references_of

READ_BATCH = 64
"""Manifests or tag links read in one driver call."""
STAT_BATCH = 256
"""Files stat-ed in one driver call."""
LIST_BATCH = 64
"""Directories listed in one driver call."""
FAN_OUT = 64
"""A repositories tree with fewer top-level directories is walked from the level below."""
SPLIT_FROM = LIST_BATCH
"""A level of a filesystem scan with this many directories or more is split among the run's
workers (``shares.scan_in_shares``): a fork costs a few milliseconds, a level of one listing batch
takes less."""

log = logging.getLogger("registry")

UNSTATED = math.inf
"""The time of a file the scan listed and did not stat: as young as can be, so nothing of it
is deleted unless it is stat-ed first (``plan_stating``)."""


T = TypeVar("T")
R = TypeVar("R")


class Stat(enum.Flag):
    """The files a scan of a filesystem stats; the others are taken as there, ``UNSTATED``, from
    their directory's listing (a walk of S3 gives every time at no cost)."""

    BLOBS = enum.auto()
    """Sizes of blob data: usage figures need all of them. They are taken once the scan and the
    last run's record (``known``) are both in (``_size_blobs``): a blob whose size the record
    holds is not stat-ed, and its time stays ``UNSTATED`` until the plan stats it, which it
    does for the blobs not marked, the only ones whose times it compares."""
    LAYERS = enum.auto()
    REVISIONS = enum.auto()
    """Times of revision links: what --delete-untagged and usage figures compare."""
    TAGS = enum.auto()
    """Times of tag links: what retention rules and usage figures compare."""
    ALL = BLOBS | LAYERS | REVISIONS | TAGS


@dataclass
class Repository:
    """One repository as the walk found it; times are the storage's."""

    revisions: dict[Digest, float] = field(default_factory=dict)
    tag_links: dict[Tag, float] = field(default_factory=dict)
    tags: dict[Tag, Digest] = field(default_factory=dict)
    """Where each tag's current link points (read after the walk)."""
    tag_history: list[tuple[Tag, Digest]] = field(default_factory=list)
    layers: dict[Digest, float] = field(default_factory=dict)
    referrer_entries: list[tuple[Digest, Digest]] = field(default_factory=list)
    """(subject, referrer) pairs of the referrers index."""
    listed: bool = False
    """Whether the catalog lists it (it has a manifests directory)."""


@dataclass
class Inventory:
    blobs: BlobTable = field(default_factory=BlobTable)
    """Size and storage time of every blob's data."""
    repositories: dict[RepositoryName, Repository] = field(default_factory=dict)
    manifests: dict[bytes, References | None] = field(default_factory=dict)
    """What each revision's manifest refers to, by raw digest (``digests.raw``); None when its
    content is missing."""
    tag_targets: bool = True
    """Whether each tag's link was read (``Repository.tags``); else only its presence is known."""
    tag_history: bool = True
    """Whether tag history links were looked for (``Repository.tag_history``)."""
    stated: Stat = Stat.ALL
    """The files whose sizes and times were read; the others' are ``UNSTATED``."""
    foreign: list[str] = field(default_factory=list)
    """Names found where the layout writes none (``lost+found``, a stray file), skipped."""

    def part(self) -> Inventory:
        """An empty inventory for a forked child's share of this one's scan (``shares``)."""
        return Inventory(stated=self.stated)

    def repository(self, name: RepositoryName) -> Repository:
        """``name``'s record, made empty the first time."""
        return self.repositories.setdefault(name, Repository())


class Recalled(Protocol):
    """What the last run found (``known.Known``), by raw digest."""

    @property
    def references(self) -> Mapping[bytes, References]: ...

    @property
    def sizes(self) -> Mapping[bytes, int]: ...


@dataclass(frozen=True, slots=True)
class _Nothing:
    """Nothing recalled: a first run, or a caller without a record."""

    references: Mapping[bytes, References] = field(default_factory=dict)
    sizes: Mapping[bytes, int] = field(default_factory=dict)


async def bounded(items: Iterable[T], work: Callable[[T], Awaitable[R]], in_flight: int) -> list[R]:
    """``work`` over ``items`` with at most ``in_flight`` at once (the driver's
    ``batches_in_flight``), results in order. A fixed set of workers takes the items in turn: a
    task per item would cost more than a small read."""
    pending = list(enumerate(items))
    results: list[R | None] = [None] * len(pending)
    pending.reverse()

    async def worker() -> None:
        while pending:
            index, item = pending.pop()
            results[index] = await work(item)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(pending)))))
    return results  # type: ignore[return-value]  # every slot was filled


async def _children(driver: StorageDriver, directory: str) -> list[str]:
    try:
        return await driver.list(directory)
    except PathNotFound:
        return []


async def _shards(driver: StorageDriver, inventory: Inventory) -> list[str]:
    """Directories whose walks together cover the layout's blobs and repositories, to walk side
    by side (on S3, listings of separate prefixes in parallel): each blob prefix directory, and
    the repositories tree two levels down when its top level is small (``team/app-1``...)."""
    foreign = inventory.foreign
    algorithms = _layouts(await _children(driver, paths.BLOBS), _is_algorithm, foreign)
    prefixes = await bounded(
        algorithms, lambda directory: _children(driver, directory), driver.batches_in_flight
    )
    shards = [prefix for listed in prefixes for prefix in _layouts(listed, _is_prefix, foreign)]
    top = _layouts(await _children(driver, paths.REPOSITORIES), is_repository_name, foreign)
    if len(top) >= FAN_OUT:
        return shards + top
    below = await bounded(top, lambda directory: _children(driver, directory), driver.batches_in_flight)
    return shards + [child for listed in below for child in _layouts(listed, _is_in_repository_tree, foreign)]


def _layouts(children: list[str], fits: Callable[[str], bool], foreign: list[str]) -> list[str]:
    """The ``children`` whose last component ``fits``; the others go to ``foreign``."""
    kept: list[str] = []
    for child in children:
        (kept if fits(child.rpartition("/")[2]) else foreign).append(child)
    return kept


def _is_algorithm(name: str) -> bool:
    return name in HEX_LENGTHS


def _is_prefix(name: str) -> bool:
    return len(name) == 2 and not name.strip("0123456789abcdef")


_REPOSITORY_DIRS = frozenset({paths.LAYERS_DIR, paths.MANIFESTS_DIR, paths.UPLOADS_DIR, paths.DOCKYARD_DIR})


def _is_in_repository_tree(name: str) -> bool:
    """A name component, or one of the directories a repository keeps: below any other name
    the layout holds no repository."""
    return is_repository_name(name) or name in _REPOSITORY_DIRS


class _Kind(enum.Enum):
    """What a directory holds, as the scan lists it."""

    BLOBS = enum.auto()  # <algorithm>/
    BLOB_PREFIXES = enum.auto()  # <two hex>/
    BLOB_DIRS = enum.auto()  # <hex>/data
    TREE = enum.auto()  # name components of repositories, or a repository's own ``_*`` directories
    MANIFESTS = enum.auto()  # revisions/ and tags/
    TAGS = enum.auto()  # <tag>/current/link and <tag>/index/
    LINK_ALGORITHMS = enum.auto()  # <algorithm>/
    LINK_DIRS = enum.auto()  # <hex>/link


class _Found(enum.Enum):
    """What a file the scan stats is."""

    BLOB = enum.auto()
    LAYER = enum.auto()
    REVISION = enum.auto()
    TAG = enum.auto()
    HISTORY = enum.auto()


_NO_NAME = RepositoryName("")
_NO_TAG = Tag("")


@dataclass(frozen=True, slots=True)
class _At:
    """Where a listed directory is: what its files will be, and of which repository."""

    found: _Found = _Found.BLOB
    name: RepositoryName = _NO_NAME
    tag: Tag = _NO_TAG
    algorithm: str = ""
    prefix: str = ""
    """The name components above (a TREE), or the two hex digits of a blob directory."""


async def _scan(
    driver: StorageDriver,
    inventory: Inventory,
    level: list[tuple[str, _Kind, _At]],
    history: bool,
    *,
    workers: int,
    meanwhile: Callable[[], Awaitable[None]],
) -> None:
    """The layout's objects below the directories of ``level``, found by listing names and
    stat-ing the files they must hold: where every stat costs a call (a filesystem), one stat
    per link instead of a walk into each link's own directory. One level of the tree at a time,
    listings and stats in batches; what each file is comes from where it was listed, so no path
    is parsed back. Tag history links are listed only with ``history``. Blobs are listed, never
    stat-ed (``_size_blobs`` does it after). The first level of ``SPLIT_FROM``
    directories or more is split among ``workers`` processes (``shares.scan_in_shares``) when
    the driver's storage can be listed from a forked child. ``meanwhile`` runs once, while
    the children scan (else after the scan)."""
    while level:
        if workers > 1 and driver.lists_in_forks and len(level) >= SPLIT_FROM:
            await shares.scan_in_shares(
                inventory,
                level,
                workers,
                lambda part, chunk: _scan(driver, part, chunk, history, workers=1, meanwhile=_nothing),
                meanwhile,
            )
            return
        level = await _step(driver, inventory, level, history)
    await meanwhile()


async def _nothing() -> None:
    pass


async def _step(
    driver: StorageDriver,
    inventory: Inventory,
    level: list[tuple[str, _Kind, _At]],
    history: bool,
) -> list[tuple[str, _Kind, _At]]:
    """One level of the scan: its directories listed, what they hold recorded or stat-ed; the
    directories of the level below."""
    stated = {kind for kind, flag in _STATS.items() if flag & inventory.stated}
    children_of = await in_batches(
        driver.list_many, [directory for directory, _, _ in level], LIST_BATCH, driver.batches_in_flight
    )
    below: list[tuple[str, _Kind, _At]] = []
    files: list[str] = []
    found: list[tuple[_At, Digest | None]] = []
    walks: list[str] = []
    for (_, kind, at), children in zip(level, children_of, strict=True):
        # The two kinds that hold nearly every entry (blobs, links) take a loop of their own.
        if not children:
            continue
        if kind is _Kind.BLOB_DIRS:
            _blobs(inventory, at, children)
            continue
        if kind is _Kind.LINK_DIRS:
            _links(inventory, at, children, at.found in stated, files=files, found=found)
            continue
        for child in children:
            leaf = child.rpartition("/")[2]
            if kind is _Kind.LINK_ALGORITHMS or kind is _Kind.BLOBS:
                if leaf in HEX_LENGTHS:
                    step = _Kind.LINK_DIRS if kind is _Kind.LINK_ALGORITHMS else _Kind.BLOB_PREFIXES
                    below.append((child, step, _At(at.found, at.name, at.tag, leaf)))
                else:
                    inventory.foreign.append(child)
            elif kind is _Kind.BLOB_PREFIXES:
                if _is_prefix(leaf):
                    below.append((child, _Kind.BLOB_DIRS, _At(algorithm=at.algorithm, prefix=leaf)))
                else:
                    inventory.foreign.append(child)
            elif kind is _Kind.TAGS:
                tag = _tag(leaf)
                if tag is None:
                    inventory.foreign.append(child)
                    continue
                files.append(f"{child}/current/link")
                found.append((_At(_Found.TAG, at.name, tag), None))
                if history:
                    at_history = _At(_Found.HISTORY, at.name, tag)
                    below.append((f"{child}/index", _Kind.LINK_ALGORITHMS, at_history))
            elif kind is _Kind.MANIFESTS:
                if leaf == "revisions":
                    below.append((child, _Kind.LINK_ALGORITHMS, _At(_Found.REVISION, at.name)))
                elif leaf == "tags":
                    below.append((child, _Kind.TAGS, at))
            else:
                _in_tree(inventory, at, child, below=below, walks=walks)
    await _take(driver, inventory, found, files)
    await bounded(
        walks,
        lambda directory: _walk_into(driver, directory, _finder(inventory)),
        driver.batches_in_flight,
    )
    return below


_HEX = "0123456789abcdef"


def _blobs(inventory: Inventory, at: _At, children: list[str]) -> None:
    """A blob prefix directory's blobs, recorded at once with size 0 and time ``UNSTATED``, by
    raw digest: no ``Digest`` is built for the blobs never looked at again. A name that is not
    the lowercase hex of a digest of ``at.algorithm`` under its prefix is foreign (as
    ``raw_named`` decides, inlined here)."""
    length = HEX_LENGTHS[at.algorithm]
    prefix = at.prefix
    put_raw, foreign = inventory.blobs.put_raw, inventory.foreign
    for child in children:
        leaf = child.rpartition("/")[2]
        if len(leaf) != length or leaf[:2] != prefix or leaf.strip(_HEX):
            foreign.append(child)
            continue
        put_raw(bytes.fromhex(leaf), 0, UNSTATED)


async def _size_blobs(driver: StorageDriver, inventory: Inventory, recorded: Mapping[bytes, int]) -> None:
    """Every blob's size once the scan listed them: the record's (``recorded``, by raw digest),
    else its data's, stat-ed in batches (with its time). A blob whose data went after the
    listing (a sweep's, or an old scan's leftovers) is dropped, as a scan that stat-ed it would
    not have found it."""
    blobs = inventory.blobs
    unsized = blobs.size_from(recorded)
    infos = await in_batches(
        driver.stat_many,
        [paths.blob_data(from_raw(key)) for key in unsized],
        STAT_BATCH,
        driver.batches_in_flight,
    )
    gone: set[bytes] = set()
    for key, info in zip(unsized, infos, strict=True):
        if info is None or info.is_dir:
            gone.add(key)
        else:
            blobs.put_raw(key, info.size, info.modified)
    if gone:
        inventory.blobs = blobs.without(gone)


def _links(
    inventory: Inventory,
    at: _At,
    children: list[str],
    stat: bool,
    *,
    files: list[str],
    found: list[tuple[_At, Digest | None]],
) -> None:
    """A directory of link directories (revisions, layers, a tag's history), named by digest:
    each link goes to be stat-ed when ``stat``, else is recorded at once, ``UNSTATED``."""
    algorithm = at.algorithm
    length = HEX_LENGTHS[algorithm]
    foreign = inventory.foreign
    digests: list[Digest] = []
    for child in children:
        leaf = child.rpartition("/")[2]
        if len(leaf) != length or leaf.strip(_HEX):
            foreign.append(child)
            continue
        digest = Digest(algorithm, leaf)
        if stat:
            files.append(f"{child}/link")
            found.append((at, digest))
        else:
            digests.append(digest)
    if not digests:
        return
    repository = inventory.repositories.setdefault(at.name, Repository())
    if at.found is _Found.HISTORY:
        repository.tag_history += [(at.tag, digest) for digest in digests]
    else:
        times = repository.revisions if at.found is _Found.REVISION else repository.layers
        times.update(dict.fromkeys(digests, UNSTATED))


def _in_tree(
    inventory: Inventory,
    at: _At,
    child: str,
    *,
    below: list[tuple[str, _Kind, _At]],
    walks: list[str],
) -> None:
    """A name in the repositories tree: a name component to list, or a repository's own
    directory (uploads are not needed)."""
    leaf = child.rpartition("/")[2]
    if not _is_in_repository_tree(leaf):
        inventory.foreign.append(child)
    elif not leaf.startswith("_"):
        below.append((child, _Kind.TREE, _At(prefix=f"{at.prefix}/{leaf}" if at.prefix else leaf)))
    elif leaf == paths.DOCKYARD_DIR:
        walks.append(child)
    elif leaf in (paths.LAYERS_DIR, paths.MANIFESTS_DIR) and is_repository_name(at.prefix):
        name = RepositoryName(at.prefix)
        if leaf == paths.LAYERS_DIR:
            below.append((child, _Kind.LINK_ALGORITHMS, _At(_Found.LAYER, name)))
        else:
            inventory.repositories.setdefault(name, Repository()).listed = True
            below.append((child, _Kind.MANIFESTS, _At(name=name)))


async def _take(
    driver: StorageDriver, inventory: Inventory, found: list[tuple[_At, Digest | None]], files: list[str]
) -> None:
    """Record each file found, stat-ed when ``inventory.stated`` says (else ``UNSTATED``)."""
    kinds = {kind for kind, flag in _STATS.items() if flag & inventory.stated}
    stated: list[tuple[_At, Digest | None, str]] = []
    for (at, digest), file in zip(found, files, strict=True):
        if at.found in kinds:
            stated.append((at, digest, file))
        else:
            _record(inventory, at, digest, UNSTATED)
    infos = await in_batches(
        driver.stat_many, [file for _, _, file in stated], STAT_BATCH, driver.batches_in_flight
    )
    for (at, digest, _), info in zip(stated, infos, strict=True):
        if info is not None and not info.is_dir:
            _record(inventory, at, digest, info.modified)


_STATS = {
    _Found.LAYER: Stat.LAYERS,
    _Found.REVISION: Stat.REVISIONS,
    _Found.TAG: Stat.TAGS,
}
"""Tag history links are never stat-ed: nothing compares their times, and one the listing shows
whose file is missing (a crashed write's directory) only costs the sweep a delete of nothing."""


def _tag(name: str) -> Tag | None:
    try:
        return Tag.parse(name)
    except RegistryError:
        return None  # a directory no push writes


def _record(inventory: Inventory, at: _At, digest: Digest | None, modified: float) -> None:
    repository = inventory.repositories.setdefault(at.name, Repository())
    if at.found is _Found.TAG:
        repository.tag_links[at.tag] = modified
        return
    assert digest is not None
    if at.found is _Found.LAYER:
        repository.layers[digest] = modified
    elif at.found is _Found.REVISION:
        repository.revisions[digest] = modified
    else:
        repository.tag_history.append((at.tag, digest))


async def in_batches(
    call: Callable[[list[str]], Awaitable[list[R]]], items: list[str], size: int, in_flight: int
) -> list[R]:
    """``call`` over ``items`` in batches of ``size``, results flattened in order."""
    batches = [items[start : start + size] for start in range(0, len(items), size)]
    return [result for answered in await bounded(batches, call, in_flight) for result in answered]


async def _walk_into(driver: StorageDriver, directory: str, found: Callable[[FileInfo], None]) -> None:
    try:
        async for info in driver.walk(directory):
            found(info)
    except PathNotFound:
        pass  # not there (yet, or any more: a repository deleted while the scan ran)


async def take_inventory(
    driver: StorageDriver,
    *,
    tag_targets: bool = True,
    tag_history: bool = True,
    stat: Stat = Stat.ALL,
    recall: Callable[[], Awaitable[Recalled]] | None = None,
    workers: int = 1,
) -> Inventory:
    """Everything stored. ``tag_targets=False`` leaves tag links unread (a run that keeps every
    manifest needs only to know a tag is there): on S3 a request saved per tag.
    ``tag_history=False`` lets the scan of a filesystem skip each tag's history links, which
    only a run that deletes untagged manifests needs (a walk finds them at no cost). The
    manifests of the last run's findings (``recall``, ``known.py``) are not read again, unless
    their blob was not found: then they are read, so that missing content refers to nothing; nor
    are the blobs whose sizes they hold stat-ed. A large filesystem is scanned by up to
    ``workers`` processes, forked: a command's, never a server's (its threads serve requests);
    the findings are recalled while the children scan, and the blobs they do not size stat-ed
    once both are done."""
    inventory = Inventory(tag_targets=tag_targets, tag_history=tag_history)
    repositories = inventory.repositories
    recalled: Recalled = _Nothing()

    async def recall_once() -> None:
        nonlocal recalled
        if recall is not None:
            recalled = await recall()

    if driver.listing_carries_stats:
        await recall_once()
        found = _finder(inventory)
        shards = await _shards(driver, inventory)
        await bounded(shards, lambda shard: _walk_into(driver, shard, found), driver.batches_in_flight)
    else:
        inventory.stated = stat & ~Stat.BLOBS
        level = [(paths.BLOBS, _Kind.BLOBS, _At()), (paths.REPOSITORIES, _Kind.TREE, _At())]
        await _scan(driver, inventory, level, tag_history, workers=workers, meanwhile=recall_once)
        if stat & Stat.BLOBS:
            await _size_blobs(driver, inventory, recalled.sizes)
        inventory.stated = stat
    tag_links = [
        (name, tag)
        for name, repository in repositories.items()
        for tag in repository.tag_links
        if tag_targets
    ]
    targets = await _read_all(driver, [paths.tag_current_link(*key) for key in tag_links], _link_target)
    for (name, tag), target in zip(tag_links, targets, strict=True):
        if target is not None:
            repositories[name].tags[tag] = target
    known = recalled.references
    blobs = inventory.blobs
    manifests: dict[bytes, References | None] = {}
    keys = [raw(digest) for repository in repositories.values() for digest in repository.revisions]
    for key, references, row in zip(keys, map(known.get, keys), blobs.rows_of(keys), strict=True):
        if references is not None and row is not None:
            manifests[key] = references
        else:
            manifests.setdefault(key, None)
    unread = [key for key, references in manifests.items() if references is None]
    read = await _read_all(driver, [paths.blob_data(from_raw(key)) for key in unread], references_of)
    manifests.update(zip(unread, read, strict=True))
    inventory.manifests = manifests
    if inventory.foreign:
        log.warning(
            "garbage collection: skipped %d names the storage layout does not write (left in "
            "place), such as %s",
            len(inventory.foreign),
            inventory.foreign[0],
        )
    return inventory


def _finder(inventory: Inventory) -> Callable[[FileInfo], None]:
    """What takes each file a walk finds into ``inventory``."""
    repositories = inventory.repositories

    def found(info: FileInfo) -> None:
        item = paths.parse(info.path)
        if isinstance(item, paths.BlobData):
            inventory.blobs[item.digest] = (info.size, info.modified)
        elif item is not None and not isinstance(item, paths.UploadFile):
            repository = repositories.setdefault(item.name, Repository())
            _add(repository, item, info.modified)
            if isinstance(item, _IN_MANIFESTS):  # S3 has no empty directories: objects make it listed
                repository.listed = True

    return found


async def _read_all(driver: StorageDriver, files: list[str], read: Callable[[bytes], R]) -> list[R | None]:
    """``read`` of each file's content (None for a missing file), read in batches."""
    batches = [files[start : start + READ_BATCH] for start in range(0, len(files), READ_BATCH)]
    contents = await bounded(batches, driver.get_many, driver.batches_in_flight)
    return [None if content is None else read(content) for batch in contents for content in batch]


def _link_target(content: bytes) -> Digest | None:
    try:
        return Digest.parse(content.decode("ascii", "replace").strip())
    except RegistryError:
        return None  # a torn or foreign file is treated as absent, never as content


_IN_MANIFESTS = (paths.ManifestRevisionLink, paths.TagCurrentLink, paths.TagIndexLink)


def _add(repository: Repository, item: paths.StoragePath, modified: float) -> None:
    if isinstance(item, paths.ManifestRevisionLink):
        repository.revisions[item.digest] = modified
    elif isinstance(item, paths.TagCurrentLink):
        repository.tag_links[item.tag] = modified
    elif isinstance(item, paths.TagIndexLink):
        repository.tag_history.append((item.tag, item.digest))
    elif isinstance(item, paths.LayerLink):
        repository.layers[item.digest] = modified
    elif isinstance(item, paths.ReferrerEntry):
        repository.referrer_entries.append((item.subject, item.manifest))
