"""Retention: the tags the configured rules do not keep are untagged at the start of a garbage
collection run, so the same run collects what only they kept (with ``delete_untagged``).

Each repository follows the first rule whose globs cover it (``policy``); a repository no rule
covers keeps every tag. A tag is kept when any clause of the rule keeps it. Times are the
storage's: a tag was pushed at its current link's modification time, or at the push record an
earlier version wrote (``records``), whichever is later; it was pulled at its pull record's
time, and a tag with no pull record was never pulled as far as the registry knows. Windows count
back from the run's start.

The untag is the API's tag delete (``Tags.untag``), under the run's lease. A tag a push moved or
wrote again since the run looked is left alone: the push is newer than the decision.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from storage_drivers import PathNotFound, StorageDriver

from ..errors import RegistryError
from ..references import Digest, RepositoryName, Tag
from ..storage import paths
from ..storage.links import read_link
from ..storage.tags import Tags
from .guard import CLOCK_SLACK
from .inventory import Inventory, Repository, bounded
from .lease import Lease
from .policy import Keep, RetentionRule, rule_for
from .records import TagTimes, read_tag_times

BATCH = 500
"""Untags between two lease checks."""


@dataclass(frozen=True, slots=True)
class Removal:
    """A tag a rule does not keep."""

    rule: int
    """The rule's number in the configuration, from 1."""
    globs: str
    name: RepositoryName
    tag: Tag
    digest: Digest

    def line(self, verb: str) -> str:
        return f"{self.name}: tag {verb}: {self.tag} (retention rule {self.rule}: {self.globs})"


async def apply_retention(
    driver: StorageDriver,
    inventory: Inventory,
    rules: tuple[RetentionRule, ...],
    now: float,
    lease: Lease | None,
) -> list[Removal]:
    """Untag what ``rules`` do not keep (with no ``lease``, a dry run: nothing in storage), and take
    it out of ``inventory`` so the run's plan sees the tags gone; returns what was untagged."""
    removals = await select(driver, inventory, rules, now)
    if lease is not None:
        done: list[Removal] = []
        for start in range(0, len(removals), BATCH):
            batch = removals[start : start + BATCH]
            await lease.check()
            untagged = await bounded(
                batch, lambda removal: _untag(driver, removal, lease.started), driver.batches_in_flight
            )
            done += [removal for removal, ok in zip(batch, untagged, strict=True) if ok]
        removals = done
    for removal in removals:
        _forget(inventory.repositories[removal.name], removal.tag)
    return removals


async def select(
    driver: StorageDriver, inventory: Inventory, rules: tuple[RetentionRule, ...], now: float
) -> list[Removal]:
    """The tags each rule does not keep, by repository then tag."""
    covered = [
        (name, found)
        for name in sorted(inventory.repositories)
        if (found := rule_for(rules, name)) is not None
    ]
    records = await bounded(covered, lambda item: read_tag_times(driver, item[0]), driver.batches_in_flight)
    removals = []
    for (name, (number, rule)), times in zip(covered, records, strict=True):
        repository = inventory.repositories[name]
        for tag in _not_kept(rule.keep, repository, times, now):
            removals.append(Removal(number, rule.describe(), name, tag, repository.tags[tag]))
    return removals


def _not_kept(keep: Keep, repository: Repository, times: dict[Tag, TagTimes], now: float) -> list[Tag]:
    tags = sorted(repository.tags)
    empty = TagTimes()
    pushed = {
        tag: max(repository.tag_links.get(tag, 0.0), times.get(tag, empty).pushed or 0.0) for tag in tags
    }
    kept = {tag for tag in tags if keep.keeps_tag(tag)}
    if keep.newest:
        kept |= set(sorted(tags, key=lambda tag: (-pushed[tag], tag))[: keep.newest])
    if keep.pushed_within is not None:
        kept |= {tag for tag in tags if pushed[tag] > now - keep.pushed_within}
    if keep.pulled_within is not None:
        window = now - keep.pulled_within
        kept |= {tag for tag in tags if (times.get(tag, empty).pulled or 0.0) > window}
    return [tag for tag in tags if tag not in kept]


async def _untag(driver: StorageDriver, removal: Removal, started: float) -> bool:
    """Whether the tag was untagged: not when a push moved it or wrote it again since the run
    began (it is newer than the decision), or a client deleted it meanwhile."""
    link = paths.tag_current_link(removal.name, removal.tag)
    try:
        written = (await driver.stat(link)).modified
    except PathNotFound:
        return False
    if written > started - CLOCK_SLACK or await read_link(driver, link) != removal.digest:
        return False
    with contextlib.suppress(RegistryError):
        await Tags(driver).untag(removal.name, removal.tag)
        return True
    return False


def _forget(repository: Repository, tag: Tag) -> None:
    repository.tags.pop(tag, None)
    repository.tag_links.pop(tag, None)
    repository.tag_history = [(t, d) for t, d in repository.tag_history if t != tag]
