"""Usage figures: how many bytes each repository refers to, and how many only it does.

They come from the inventory garbage collection's mark phase takes (``inventory.take_inventory``):
``dockyard usage`` walks the storage for them alone, and every garbage collection run (the
command's, or the server's schedule) derives them from its own walk, less what it removed.
Either way the figures are written as one record (``paths.usage_record``), so the HTTP
endpoint and the web interface read them without walking anything.

A repository refers to the blobs its manifest revisions reach: each manifest's own blob, its
config and layers, and, through an index, its children's. A layer link alone (an upload no
manifest uses yet) refers to nothing, as for garbage collection. The record, which ``--json``
prints too, is one JSON object whose keys stay stable::

    {
      "measured": "2026-12-05T21:40:00Z",    when the walk began (the storage's clock, RFC 3339)
      "stored_bytes": 123456,                every blob under blobs/, referenced or not
      "blobs": 42,
      "unreferenced_bytes": 2048,            what no repository refers to (what GC may remove)
      "repositories": [
        {"name": "team/app", "referenced_bytes": 100000, "unique_bytes": 4096,
         "tags": 3, "manifests": 5, "last_push": "2026-12-05T21:30:12Z" or null}
      ]                                      sorted by name
    }
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, repeat
from typing import Any

from offload import to_thread
from storage_drivers import PathNotFound, StorageDriver

from ..references import Digest, RepositoryName, RunId
from ..storage import paths
from . import known
from .collect import Options, Report, garbage_collect
from .digests import raw
from .inventory import UNSTATED, Inventory, Repository, Stat, take_inventory
from .mark import Plan
from .state import storage_now


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    name: RepositoryName
    referenced_bytes: int
    unique_bytes: int
    tags: int
    manifests: int
    last_push: float | None
    """The newest manifest revision link, in the storage's clock; None without any. Every
    manifest push rewrites its revision link, with its tags' links in the same write (the
    registry's and Distribution's alike), so tag links are not stat-ed for it."""

    def document(self) -> dict[str, Any]:
        return {
            "name": str(self.name),
            "referenced_bytes": self.referenced_bytes,
            "unique_bytes": self.unique_bytes,
            "tags": self.tags,
            "manifests": self.manifests,
            "last_push": _timestamp(self.last_push) if self.last_push is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    measured: float
    stored_bytes: int
    blobs: int
    unreferenced_bytes: int
    repositories: tuple[RepositoryUsage, ...]

    def document(self) -> dict[str, Any]:
        return {
            "measured": _timestamp(self.measured),
            "stored_bytes": self.stored_bytes,
            "blobs": self.blobs,
            "unreferenced_bytes": self.unreferenced_bytes,
            "repositories": [repository.document() for repository in self.repositories],
        }

    def encode(self) -> bytes:
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":")).encode()

    def lines(self) -> Iterable[str]:
        """The readable table ``dockyard usage`` prints."""
        header = ("REPOSITORY", "REFERENCED", "UNIQUE", "TAGS", "MANIFESTS", "LAST PUSH")
        rows = [
            (
                str(r.name),
                human_bytes(r.referenced_bytes),
                human_bytes(r.unique_bytes),
                str(r.tags),
                str(r.manifests),
                _timestamp(r.last_push) if r.last_push is not None else "-",
            )
            for r in self.repositories
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            yield "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        yield ""
        yield (
            f"stored: {human_bytes(self.stored_bytes)} in {self.blobs} blobs "
            f"({self.stored_bytes} bytes); referenced by no repository: "
            f"{human_bytes(self.unreferenced_bytes)}; measured {_timestamp(self.measured)}"
        )


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _timestamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_of(inventory: Inventory, measured: float) -> Usage:
    """The figures of a walk; ``measured`` is when it began."""
    reached = {name: _reached(repository, inventory) for name, repository in inventory.repositories.items()}
    # In set operations and ``map``, in C: a store's every blob goes through each step. By raw
    # digest, as the table and the references keep them: no ``Digest`` built per blob.
    referenced: set[bytes] = set()
    shared: set[bytes] = set()  # reached from more than one repository
    for digests in reached.values():
        shared |= referenced & digests
        referenced |= digests
    sizes = inventory.blobs.sizes()
    size_of = dict(zip(referenced, map(sizes.get, referenced, repeat(0)), strict=True))
    repositories = []
    for name, repository in sorted(inventory.repositories.items()):
        if not repository.listed and not repository.revisions:
            continue  # only layer links or uploads: no repository the catalog lists
        digests = reached[name]
        times = [t for t in repository.revisions.values() if t != UNSTATED]
        repositories.append(
            RepositoryUsage(
                name,
                sum(map(size_of.__getitem__, digests)),
                sum(map(size_of.__getitem__, digests - shared)),
                len(repository.tag_links),  # every tag, whether or not the walk read its link
                len(repository.revisions),
                max(times) if times else None,
            )
        )
    return Usage(
        measured,
        sum(sizes.values()),
        len(sizes),
        sum(map(sizes.__getitem__, sizes.keys() - referenced)),
        tuple(repositories),
    )


def _reached(repository: Repository, inventory: Inventory) -> set[bytes]:
    """Every digest the repository's manifest revisions reach, themselves included (raw)."""
    manifests = inventory.manifests
    found = set(map(raw, repository.revisions))
    frontier = found
    while frontier:  # a step at a time for all that was reached, as the mark follows them
        followed = [references for references in map(manifests.get, frontier) if references is not None]
        frontier = set(chain.from_iterable(references.blobs for references in followed))
        frontier.update(chain.from_iterable(references.children for references in followed))
        frontier -= found
        found |= frontier
    return found


def after_run(inventory: Inventory, removed: Plan) -> Inventory:
    """What a walk would find once a run removed ``removed`` (without walking again)."""
    gone: dict[RepositoryName, set[Digest]] = {}
    for name, digest in removed.all_revisions():
        gone.setdefault(name, set()).add(digest)
    emptied = set(removed.empty_repositories)
    repositories = {}
    for name, repository in inventory.repositories.items():
        deleted = gone.get(name)
        revisions = (
            {d: t for d, t in repository.revisions.items() if d not in deleted}
            if deleted
            else repository.revisions.copy()
        )
        repositories[name] = Repository(
            revisions=revisions,
            tag_links=repository.tag_links,
            tags=repository.tags,
            listed=repository.listed and name not in emptied,
        )
    blobs = inventory.blobs.without({raw(digest) for digest in removed.blobs})
    return Inventory(blobs, repositories, inventory.manifests, inventory.tag_targets)


async def measure(driver: StorageDriver, record: bool, workers: int = 1) -> Usage:
    """Walk the storage for the figures (``workers`` processes, ``take_inventory``); ``record``
    writes them as the usage record too (not in read-only mode: the storage's clock is read by
    writing a probe)."""
    measured = await storage_now(driver, RunId(secrets.token_hex(16))) if record else _now()
    # The figures need blobs' sizes, revision links' times and the tags' names (a listing gives
    # them): where tags point, their history and the other links' times are neither read nor
    # stat-ed.
    inventory = await take_inventory(
        driver,
        tag_targets=False,
        tag_history=False,
        stat=Stat.BLOBS | Stat.REVISIONS,
        recall=lambda: known.load(driver),  # what the last collection found: fewer reads and stats
        workers=workers,
    )
    usage = usage_of(inventory, measured)
    if record:
        await write_record(driver, usage)
    return usage


async def collect_and_record(driver: StorageDriver, options: Options, emit: Callable[[str], None]) -> Report:
    """A garbage collection run, then (a real one) the usage record from its walk."""
    if options.dry_run:
        return await garbage_collect(driver, options, emit)
    measured = await storage_now(driver, RunId(secrets.token_hex(16)))
    report = await garbage_collect(driver, options, emit)
    if report.inventory is not None:
        await write_record(driver, usage_of(after_run(report.inventory, report.removed), measured))
    return report


def _now() -> float:
    return datetime.now(UTC).timestamp()


async def write_record(driver: StorageDriver, usage: Usage) -> None:
    await driver.put_content(paths.usage_record(), usage.encode())


@dataclass(frozen=True, slots=True)
class Figures:
    """What the web interface shows beside a repository's name."""

    referenced_bytes: int
    last_push: float | None


@dataclass(frozen=True, slots=True)
class Record:
    """The usage record as read: its JSON document, and its repositories by name."""

    document: Mapping[str, Any]
    repositories: Mapping[str, Mapping[str, Any]]

    @property
    def measured(self) -> float | None:
        return parse_timestamp(self.document.get("measured"))

    def figures(self, names: Iterable[str]) -> dict[str, Figures]:
        """The recorded figures of ``names`` (those the record holds)."""
        found = {}
        for name in names:
            entry = self.repositories.get(name)
            size = entry.get("referenced_bytes") if entry is not None else None
            if entry is not None and isinstance(size, int):
                found[name] = Figures(size, parse_timestamp(entry.get("last_push")))
        return found


class Records:
    """The latest usage record for a worker's requests. A record of 10,000 repositories is over a
    megabyte of JSON: it is parsed (on a thread) only when its storage stat changed, so a request
    costs one stat, and every worker still sees a new record at once."""

    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        self._seen: tuple[float, int] | None = None
        self._record: Record | None = None

    async def latest(self) -> Record | None:
        try:
            info = await self._driver.stat(paths.usage_record())
        except PathNotFound:
            return None
        if self._seen != (info.modified, info.size):
            content = await self._driver.get_content(paths.usage_record())
            self._record = await to_thread(_parse, content)
            self._seen = (info.modified, info.size)
        return self._record


def _parse(content: bytes) -> Record | None:
    """None for what cannot be read: a record is only ever replaced whole, so a foreign file."""
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("repositories"), list):
        return None
    named = {str(e.get("name")): e for e in document["repositories"] if isinstance(e, dict)}
    return Record(document, named)


def parse_timestamp(value: object) -> float | None:
    """A time as the record writes it; None for anything else."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
