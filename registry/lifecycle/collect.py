"""One garbage collection run: take the lease, untag what retention rules do not keep, mark,
sweep, report in one log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from storage_drivers import PathNotFound, StorageDriver, StorageError

from ..references import RunId
from ..storage import paths
from . import known
from .inventory import Inventory, Stat, take_inventory
from .lease import Lease, claim, confirmed
from .mark import Plan, plan_stating
from .policy import RetentionRule
from .retention import Removal, apply_retention
from .state import storage_now
from .sweep import sweep

DEFAULT_GRACE_PERIOD = 3600.0

log = logging.getLogger("registry")


@dataclass(frozen=True, slots=True)
class Options:
    dry_run: bool = False
    delete_untagged: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD
    """Content the storage wrote less than this long before the run started stays."""
    retention: tuple[RetentionRule, ...] = ()
    """Rules applied first (``retention``): the tags they do not keep are untagged."""
    workers: int = 1
    """Processes that scan a large filesystem (``take_inventory``): the command's, one per
    usable CPU; a scheduled run inside the server scans in one."""


@dataclass
class Report:
    removed: Plan
    """What the run deleted (a dry run: what a real run would delete)."""
    planned: Plan
    phases: dict[str, float] = field(default_factory=dict)
    untagged: list[Removal] = field(default_factory=list)
    """The tags retention rules removed (a dry run: would remove)."""
    inventory: Inventory | None = None
    """What the mark's walk found (the usage figures come from it)."""

    def summary(self, dry_run: bool) -> str:
        removed, planned = self.removed, self.planned
        spared = 0 if removed is planned else len(planned.digests()) - len(removed.digests())
        retained = ""
        if "retention" in self.phases:
            retained = f"{len(self.untagged)} tags {'would be ' if dry_run else ''}untagged by retention; "
        timing = ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in self.phases.items())
        return (
            f"garbage collection{' (dry run)' if dry_run else ''}: marked {len(planned.marked)} blobs "
            f"from {planned.kept_manifests} manifests; {'would remove' if dry_run else 'removed'} "
            f"{len(removed.blobs)} blobs ({sum(removed.blobs.values())} bytes), "
            f"{len(removed.all_revisions())} manifests, {len(removed.layers)} layer links, "
            f"{len(removed.tag_history)} tag history entries, {len(removed.referrer_entries)} referrers "
            f"entries, {len(removed.empty_repositories)} empty repositories; "
            + retained
            + f"{spared} digests spared for pushes during the run; {timing}"
        )


async def garbage_collect(driver: StorageDriver, options: Options, emit: Callable[[str], None]) -> Report:
    """Run once; ``emit`` gets one line per item removed (or, dry, that would be)."""
    started = time.monotonic()
    if options.dry_run:
        begun = await storage_now(driver, RunId(secrets.token_hex(16)))
        report = await _mark(driver, options, begun, None, walk=_inventory(driver, options), marking=started)
        report.removed = report.planned
    else:
        claimed = await claim(driver, "garbage-collect")
        # The walk only reads: it starts with the claim (pushes that finished before it wrote
        # their links before it), runs through the lease's settle time, and is dropped unread
        # when another run takes the lease.
        walking = asyncio.create_task(_inventory(driver, options))
        try:
            async with confirmed(claimed) as lease:
                await _remove_leftovers(driver, lease.run)
                report = await _mark(driver, options, lease.started, lease, walk=walking, marking=started)
                sweeping = time.monotonic()
                report.removed = await sweep(lease, report.planned)
                await _forget_run(driver, paths.gc_run(lease.run))
                report.phases["sweep"] = time.monotonic() - sweeping
        finally:
            walking.cancel()
            await asyncio.wait([walking])
            if not walking.cancelled():
                walking.exception()  # the lease's failure is the one to report
    report.phases["total"] = time.monotonic() - started
    for removal in report.untagged:
        emit(removal.line("eligible for deletion" if options.dry_run else "deleted"))
    for line in report.removed.lines("eligible for deletion" if options.dry_run else "deleted"):
        emit(line)
    log.info("%s", report.summary(options.dry_run))
    return report


@dataclass(frozen=True, slots=True)
class _Walk:
    inventory: Inventory
    recorded: known.Known
    """The last run's record of references and sizes, which the walk used."""


async def _inventory(driver: StorageDriver, options: Options) -> _Walk:
    # Retention and --delete-untagged need to know where each tag points, and only
    # --delete-untagged deletes tag history; a plain run needs neither. A real run's usage
    # figures need every blob's size and every revision link's time (``usage``: the last push);
    # a dry run only what its rules compare (the plan stats the unmarked blobs and their layer
    # links itself). Tag links' times only retention compares.
    stat = Stat.TAGS if options.retention else Stat(0)
    if options.dry_run:
        stat |= Stat.REVISIONS if options.delete_untagged else Stat(0)
    else:
        stat |= Stat.BLOBS | Stat.REVISIONS
    recorded = known.Known()

    async def recall() -> known.Known:
        nonlocal recorded
        recorded = await known.load(driver)
        return recorded

    inventory = await take_inventory(
        driver,
        tag_targets=options.delete_untagged or bool(options.retention),
        tag_history=options.delete_untagged,
        stat=stat,
        recall=recall,
        workers=options.workers,
    )
    return _Walk(inventory, recorded)


async def _mark(
    driver: StorageDriver,
    options: Options,
    begun: float,
    lease: Lease | None,
    *,
    walk: Awaitable[_Walk],
    marking: float,
) -> Report:
    """Apply retention to what ``walk`` found (``lease`` None: a dry run, which untags nothing)
    and plan; ``begun`` is the run's start by the storage's clock, ``marking`` when the walk
    began (``time.monotonic``). The record of references and sizes (``known``) is replaced when
    what was found is worth it (``known.worth_writing``; a dry run too: it is no part of the
    registry's content)."""
    walked = await walk
    inventory = walked.inventory
    phases: dict[str, float] = {}
    untagged: list[Removal] = []
    if options.retention:
        retaining = time.monotonic()
        untagged = await apply_retention(driver, inventory, options.retention, begun, lease)
        phases["retention"] = time.monotonic() - retaining
    planned = await plan_stating(driver, inventory, options.delete_untagged, begun - options.grace_period)
    record = known.found(inventory, walked.recorded)  # after the plan's stats
    if known.worth_writing(record, walked.recorded):
        await known.save(driver, record)
    phases["mark"] = time.monotonic() - marking - phases.get("retention", 0.0)
    return Report(planned, planned, phases, untagged, inventory)


async def _remove_leftovers(driver: StorageDriver, current: RunId) -> None:
    """Records of earlier runs (one that died, or pushes that wrote after a run ended)."""
    try:
        runs = await driver.list(paths.gc_runs())
    except PathNotFound:
        return
    for run_dir in runs:
        if run_dir != paths.gc_run(current):
            await _forget_run(driver, run_dir)


async def _forget_run(driver: StorageDriver, run_dir: str) -> None:
    """Remove a run's records. Best effort: the sweep is over (or was never this run's), records
    of runs other than the current one decide nothing, and the next run removes what is left. A
    push may be writing a record there at the same moment, which S3 can refuse to delete."""
    try:
        await driver.delete(run_dir)
    except PathNotFound:
        pass
    except StorageError as exc:
        log.warning("garbage collection: records of a run are left for the next run: %s", exc)
        return
    # Deleting a tree leaves the directory above it on a filesystem; deleting one object takes
    # its directory along when that left it empty, and nothing else: the run's path, gone now,
    # takes ``runs/`` along unless another run's records (or a push's) are in it.
    with contextlib.suppress(StorageError):
        await driver.delete_many([run_dir])
