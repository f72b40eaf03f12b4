"""The mark phase: from the inventory (``inventory.take_inventory``), decide what stays.

A blob stays when a kept manifest refers to it (its config, layers, and index children; a kept
manifest's own digest too). Every manifest revision is kept, unless ``delete_untagged``: then
only tagged manifests, the children of a kept index (Distribution 2.8 deletes those), and the
manifests whose ``subject`` is a kept manifest (referrers go with their subject). Content whose
storage time is not older than ``cutoff`` (the grace period before the run started) stays too,
and so do the blobs a young layer link points at: the layers of an image still being pushed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain

from storage_drivers import StorageDriver

from ..references import Digest, RepositoryName, Tag
from ..storage import paths
from .digests import DigestSet, from_raw, raw
from .inventory import STAT_BATCH, UNSTATED, Inventory, Repository, Stat, in_batches
from .manifest_references import References


@dataclass
class Plan:
    """What a run removes, in the order it removes it."""

    marked: DigestSet = field(default_factory=DigestSet)
    kept_manifests: int = 0
    tag_history: list[tuple[RepositoryName, Tag, Digest]] = field(default_factory=list)
    revisions: list[list[tuple[RepositoryName, Digest]]] = field(default_factory=list)
    """In waves: an index goes in an earlier wave than the children it refers to."""
    referrer_entries: list[tuple[RepositoryName, Digest, Digest]] = field(default_factory=list)
    layers: list[tuple[RepositoryName, Digest]] = field(default_factory=list)
    blobs: dict[Digest, int] = field(default_factory=dict)
    """Blob data to delete, with its size."""
    empty_repositories: list[RepositoryName] = field(default_factory=list)
    """Repositories left without manifests and tags: they leave the catalog."""

    def digests(self) -> set[Digest]:
        """Every digest the plan deletes something of: what the sweep condemns."""
        found = set(self.blobs) | {d for _, d in self.all_revisions()} | {d for _, d in self.layers}
        return found | {d for _, _, d in self.tag_history} | {m for _, _, m in self.referrer_entries}

    def without(self, spared: set[Digest]) -> Plan:
        return Plan(
            self.marked,
            self.kept_manifests,
            [item for item in self.tag_history if item[2] not in spared],
            [[item for item in wave if item[1] not in spared] for wave in self.revisions],
            [item for item in self.referrer_entries if item[2] not in spared],
            [item for item in self.layers if item[1] not in spared],
            {d: size for d, size in self.blobs.items() if d not in spared},
            self.empty_repositories,
        )

    def all_revisions(self) -> list[tuple[RepositoryName, Digest]]:
        return [item for wave in self.revisions for item in wave]

    def lines(self, verb: str) -> Iterable[str]:
        """One line per item: ``verb`` is "eligible for deletion" (a dry run) or "deleted"."""
        for name, tag, digest in self.tag_history:
            yield f"{name}: tag history entry {verb}: {tag}@{digest}"
        for name, digest in self.all_revisions():
            yield f"{name}: manifest {verb}: {digest}"
        for name, subject, referrer in self.referrer_entries:
            yield f"{name}: referrers entry {verb}: {referrer} (subject {subject})"
        for name, digest in self.layers:
            yield f"{name}: layer link {verb}: {digest}"
        for digest, size in sorted(self.blobs.items(), key=lambda item: str(item[0])):
            yield f"blob {verb}: {digest} ({size} bytes)"
        for name in self.empty_repositories:
            yield f"empty repository {verb}: {name}"


def plan(inventory: Inventory, delete_untagged: bool, cutoff: float) -> Plan:
    """What a run removes: everything not reachable, not younger than ``cutoff``.
    ``delete_untagged`` needs an inventory with ``tag_targets``."""
    if ~inventory.stated & (Stat.BLOBS | Stat.LAYERS):
        raise ValueError("a plan needs the blobs' and layer links' times: see plan_stating")
    marked, deleted_revisions = _mark(inventory, delete_untagged, cutoff)
    return _plan(inventory, marked, deleted_revisions, cutoff)


async def plan_stating(
    driver: StorageDriver, inventory: Inventory, delete_untagged: bool, cutoff: float
) -> Plan:
    """``plan``, for an inventory whose scan left files unstated: it stats those the plan needs
    first (blobs not marked, layer links to them), once it knows what is marked."""
    marked, deleted_revisions = _mark(inventory, delete_untagged, cutoff)
    await _stat_unmarked(driver, inventory, marked.marked)
    return _plan(inventory, marked, deleted_revisions, cutoff)


def _mark(
    inventory: Inventory, delete_untagged: bool, cutoff: float
) -> tuple[Plan, dict[RepositoryName, set[Digest]]]:
    """A plan with only what is marked, and each repository's revisions not kept."""
    if delete_untagged and not (inventory.tag_targets and inventory.tag_history):
        raise ValueError("deleting untagged manifests needs the tags' targets and history")
    if delete_untagged and not inventory.stated & Stat.REVISIONS:
        raise ValueError("deleting untagged manifests needs the revisions' times")
    result = Plan(DigestSet(inventory.blobs))
    deleted_revisions: dict[RepositoryName, set[Digest]] = {}
    pending: list[bytes] = []  # raw digests: no ``Digest`` built for what the mark follows
    for name, repository in inventory.repositories.items():
        if delete_untagged:
            kept = _kept_manifests(repository, inventory.manifests, cutoff)
            deleted_revisions[name] = set(repository.revisions) - kept
            pending += map(raw, kept)
        else:  # every revision is kept: no set of them to build
            deleted_revisions[name] = set()
            pending += map(raw, repository.revisions)
    result.kept_manifests = len(pending)
    # Everything a marked manifest refers to is marked, in any repository: as in Distribution, a
    # revision some kept manifest refers to stays, and so must what it refers to. Followed a
    # step at a time for all that was reached, in set operations (a digest at a time costs the
    # interpreter twice as much).
    manifests = inventory.manifests
    reached: set[bytes] = set()
    frontier = set(pending)
    while frontier:
        reached |= frontier
        followed = [r for key in frontier & manifests.keys() if (r := manifests[key]) is not None]
        frontier = set(chain.from_iterable(r.blobs for r in followed))
        frontier.update(chain.from_iterable(r.children for r in followed))
        frontier -= reached
    result.marked.add_all(reached)
    return result, deleted_revisions


async def _stat_unmarked(driver: StorageDriver, inventory: Inventory, marked: DigestSet) -> None:
    """Sizes and times of the unstated blobs not marked and of the unstated layer links to content
    not marked. A layer link not there any more is forgotten; a blob directory without data
    stays unstated (there is nothing to delete)."""
    unmarked = [(key, modified) for key, _, modified in marked.unmarked()]
    blobs = [from_raw(key) for key, modified in unmarked if modified == UNSTATED]
    # A link's digest is not marked when its blob is one of the few unmarked, or is no blob of
    # the table and was not marked either: told by the hex string, whose hash is cached, before
    # any look-up by raw digest (every layer link of the store goes by here).
    unmarked_hex = {key.hex() for key, _ in unmarked}
    in_table = inventory.blobs.holds_raw
    layers = [
        (name, digest)
        for name, repository in inventory.repositories.items()
        for digest, modified in repository.layers.items()
        if modified == UNSTATED
        and (digest.hex in unmarked_hex or (not in_table(raw(digest)) and digest not in marked))
    ]
    files = [paths.blob_data(d) for d in blobs] + [paths.layer_link(*item) for item in layers]
    infos = await in_batches(driver.stat_many, files, STAT_BATCH, driver.batches_in_flight)
    for digest, info in zip(blobs, infos, strict=False):
        if info is not None and not info.is_dir:
            inventory.blobs[digest] = (info.size, info.modified)
    for (name, digest), info in zip(layers, infos[len(blobs) :], strict=True):
        if info is not None and not info.is_dir:
            inventory.repositories[name].layers[digest] = info.modified
        else:
            del inventory.repositories[name].layers[digest]


def _plan(
    inventory: Inventory, result: Plan, deleted_revisions: dict[RepositoryName, set[Digest]], cutoff: float
) -> Plan:
    """The rest of ``plan``, on what ``_mark`` gave."""
    for name, repository in sorted(inventory.repositories.items()):
        deleted = {d for d in deleted_revisions[name] if d not in result.marked}
        tagged = repository.tags if inventory.tag_targets else repository.tag_links
        if repository.listed and not tagged and not set(repository.revisions) - deleted:
            result.empty_repositories.append(name)
        for wave, digests in enumerate(_waves(deleted, inventory.manifests)):
            if wave == len(result.revisions):
                result.revisions.append([])
            result.revisions[wave] += [(name, d) for d in sorted(digests, key=str)]
        result.tag_history += [
            (name, t, d) for t, d in sorted(repository.tag_history, key=str) if d in deleted
        ]
        result.referrer_entries += [
            (name, subject, referrer)
            for subject, referrer in sorted(repository.referrer_entries, key=str)
            if referrer in deleted or referrer not in repository.revisions
        ]
    # By hex (a ``Digest``'s own string): the links never stat-ed count as young, and they are
    # nearly all of them.
    young_layers = {
        d.hex
        for repository in inventory.repositories.values()
        for d, t in repository.layers.items()
        if t > cutoff
    }
    for key, size, modified in result.marked.unmarked():
        if modified <= cutoff and modified != UNSTATED and key.hex() not in young_layers:
            result.blobs[from_raw(key)] = size
    for name, repository in sorted(inventory.repositories.items()):
        # The time first: a link to marked content was never stat-ed (``UNSTATED``), so the
        # look-ups by raw digest are left for the few that may be orphaned.
        removed = [
            digest
            for digest, modified in repository.layers.items()
            if digest in result.blobs
            or (modified <= cutoff and digest not in inventory.blobs and digest not in result.marked)
        ]
        result.layers += [(name, digest) for digest in sorted(removed, key=str)]
    return result


def _waves(deleted: set[Digest], manifests: dict[bytes, References | None]) -> list[set[Digest]]:
    """``deleted`` split so that no manifest goes before an index that refers to it: a crash
    between two waves leaves no index pointing at a missing child."""
    waves = []
    remaining = set(deleted)
    while remaining:
        referred: set[bytes] = set()
        for digest in remaining:
            references = manifests.get(raw(digest))
            if references is not None:
                referred |= references.children
        wave = {d for d in remaining if raw(d) not in referred} or remaining
        waves.append(wave)
        remaining -= wave
    return waves


def _kept_manifests(
    repository: Repository, manifests: dict[bytes, References | None], cutoff: float
) -> set[Digest]:
    """With ``delete_untagged``: the tagged revisions, the young ones, and what they reach."""
    kept = {d for d in repository.tags.values() if d in repository.revisions}
    kept |= {d for d, modified in repository.revisions.items() if modified > cutoff}
    subjects = _subjects(repository, manifests)
    pending = list(kept)
    while pending:
        digest = pending.pop()
        references = manifests.get(raw(digest))
        reached = {from_raw(key) for key in references.children} if references is not None else set()
        reached |= subjects.get(digest, set())
        for found in reached & repository.revisions.keys() - kept:
            kept.add(found)
            pending.append(found)
    return kept


def _subjects(repository: Repository, manifests: dict[bytes, References | None]) -> dict[Digest, set[Digest]]:
    """Subject -> the manifests in the repository that refer to it."""
    referrers: dict[Digest, set[Digest]] = {}
    for digest in repository.revisions:
        references = manifests.get(raw(digest))
        if references is not None and references.subject is not None:
            referrers.setdefault(from_raw(references.subject), set()).add(digest)
    for subject, referrer in repository.referrer_entries:
        referrers.setdefault(subject, set()).add(referrer)
    return referrers
