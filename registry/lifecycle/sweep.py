"""The sweep: where garbage collection decides what it deletes, and why that is safe while the
registry serves.

What makes content referenced: a manifest revision link (every one, or with
``--delete-untagged`` those ``mark`` keeps) refers to the manifest's own blob, its config and
layers, and its index children; a tag refers to its manifest. A layer link alone refers to
nothing: it only says a repository may use the blob. Anything else goes, in reference order
(tag history -> manifest revisions and referrers entries -> layer links -> blob data), so a
crash at any point leaves references to content that still exists, and the next run finishes.
Last, repositories left with no manifest and no tag leave the catalog (``repositories``).

The protocol, with the push's side in ``guard`` and the lease in ``lease``:

1. The run takes the lease; the record now says "run R active". Its start time is the
   storage's time for that record.
2. It marks (``mark``). Pushes that finished before the record changed wrote their links
   before the mark began, so the mark sees them.
3. It writes a "condemned by R" marker for every digest it plans to delete something of.
4. Then it lists R's "referenced" records once, spares those digests, and deletes the rest.
5. It removes its records and sets the record inactive.

A push whose two reads of the record differ, or show R active, writes "referenced during R"
for every digest it refers to, then checks each still exists and is not condemned. If its
check ran before the marker was written, its record was written before that, so the listing
in step 4 (later still) finds it and the digest is spared. If its check ran after, it sees the
marker (or the content already gone) and refuses. Either way no acknowledged push refers to
deleted content, whatever the grace period: an old unreferenced blob that a client skipped
uploading because HEAD said it exists, or mounted from another repository, is covered the same
way as a fresh one. Storage that lists what was written before (S3 is strongly consistent) is
all it assumes. The holder checks its lease before each batch of deletes, so a run that lost
it (paused, partitioned) deletes nothing more; markers of a run whose lease expired are void.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from storage_drivers import PathNotFound, StorageDriver

from ..references import Digest
from ..storage import paths
from .lease import Lease
from .mark import Plan, bounded
from .repositories import remove_if_empty

BATCH = 500
"""Deletes between two lease checks."""

T = TypeVar("T")


async def sweep(lease: Lease, planned: Plan) -> Plan:
    """Delete what ``planned`` lists, except what pushes referred to during the run; returns what
    was deleted."""
    driver = lease.driver
    run = lease.run
    condemned = sorted(planned.digests(), key=str)
    await _in_batches(lease, condemned, lambda d: driver.put_content(paths.gc_condemned(run, d), b""))
    spared = await referenced_during(driver, lease)
    doomed = planned.without(spared)
    await _in_batches(lease, spared & set(condemned), lambda d: _delete(driver, paths.gc_condemned(run, d)))
    await _in_batches(lease, doomed.tag_history, lambda i: _delete(driver, paths.tag_index_entry(*i)))
    for wave in doomed.revisions:
        await _in_batches(lease, wave, lambda i: _delete(driver, paths.manifest_revision(*i)))
    await _in_batches(lease, doomed.referrer_entries, lambda i: _delete(driver, paths.referrer(*i)))
    await _in_batches(lease, doomed.layers, lambda i: _delete(driver, paths.layer(*i)))
    await _in_batches(lease, sorted(doomed.blobs, key=str), lambda d: _delete(driver, paths.blob(d)))
    doomed.empty_repositories = [
        name for name in planned.empty_repositories if await remove_if_empty(lease, name)
    ]
    return doomed


async def referenced_during(driver: StorageDriver, lease: Lease) -> set[Digest]:
    """The digests pushes recorded during the run; a listing error propagates (never "none")."""
    found: set[Digest] = set()
    try:
        async for info in driver.walk(paths.gc_referenced_records(lease.run)):
            digest = paths.digest_in_records(info.path)
            if digest is not None:
                found.add(digest)
    except PathNotFound:
        pass  # no push needed the careful path
    return found


async def _in_batches(
    lease: Lease, items: Sequence[T] | set[T], work: Callable[[T], Awaitable[None]]
) -> None:
    ordered = list(items)
    for start in range(0, len(ordered), BATCH):
        await lease.check()
        await bounded(ordered[start : start + BATCH], work)


async def _delete(driver: StorageDriver, path: str) -> None:
    with contextlib.suppress(PathNotFound):  # gone already: a crashed run's work, or a client's delete
        await driver.delete(path)
