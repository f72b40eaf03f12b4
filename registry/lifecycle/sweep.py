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

1. The run claims the lease; the record now says "run R active". Its start time is the
   storage's time for that record.
2. It marks (``mark``), starting once the claim is written (while it settles, on storage that
   cannot create exclusively; the mark only reads; a run that does not get the lease drops it).
   Pushes that finished before the record changed wrote their links before the mark began, so
   the mark sees them. Nothing below happens before the lease is confirmed.
3. It writes "condemned by R" markers listing every digest it plans to delete something of
   (``markers``: one object per group of digests).
4. Then it lists R's "referenced" records once, spares those digests (writes the markers that
   list them again without them, or removes those left empty), writes "R decided", and deletes
   the rest: the digests the markers still list.
5. It removes its records and sets the record inactive.

A push whose two reads of the record differ, or show R active, writes "referenced during R"
for every digest it refers to, then checks each still exists and is not condemned. If its
check ran before the marker was written, its record was written before that, so the listing
in step 4 (later still) finds it and the digest is spared. If its check ran after, it sees the
marker and waits for step 4's decision: a digest still listed after "R decided" goes, and
the push is refused; one no longer listed was spared (a push checked
before it, or this push's record was listed) and the push goes on. So a refused push only ever
withdraws links to content no acknowledged push refers to: two pushes of the same manifest,
one checked before a marker and one after, write the same tag and revision files, and the
second cannot withdraw the first's. Either way no acknowledged push refers to deleted content,
whatever the grace period: an old unreferenced blob that a client skipped uploading because
HEAD said it exists, or mounted from another repository, is covered the same way as a fresh
one. Storage that lists what was written before (S3 is strongly consistent) is all it assumes.
The holder checks its lease before each batch of deletes, so a run that lost it (paused,
partitioned) deletes nothing more; a push waiting for a run whose lease expired goes on.

A client's DELETE of a manifest removes its tags, then its revision. With
``--delete-untagged``, a run that reads the tags in between finds the revision untagged, and
old, and may delete it and its content before the DELETE gets to it: no tag refers to it any
more, only the request deleting it, so no acknowledged image loses anything, and the DELETE
answers as done (``Manifests.delete``).
"""

from __future__ import annotations

from storage_drivers import PathNotFound, StorageDriver

from ..references import Digest
from ..storage import paths
from . import markers
from .lease import Lease
from .mark import Plan
from .repositories import remove_if_empty

BATCH = 1000
"""Deletes (or markers written) between two lease checks: S3 deletes 1,000 keys a request."""


async def sweep(lease: Lease, planned: Plan) -> Plan:
    """Delete what ``planned`` lists, except what pushes referred to during the run; returns what
    was deleted."""
    driver = lease.driver
    run = lease.run
    condemned = markers.grouped(run, planned.digests())
    await _writes(lease, [(path, markers.encode(digests)) for path, digests in condemned.items()])
    spared = await referenced_during(driver, lease)
    doomed = planned.without(spared)
    lifted = {
        path: [d for d in digests if d not in spared]
        for path, digests in condemned.items()
        if not spared.isdisjoint(digests)
    }
    await _writes(lease, [(path, markers.encode(left)) for path, left in lifted.items() if left])
    await _deletes(lease, [path for path, left in lifted.items() if not left])
    await lease.check()
    await driver.put_content(paths.gc_decided(run), b"")
    await _deletes(lease, [paths.tag_index_link(*item) for item in doomed.tag_history])
    for wave in doomed.revisions:
        await _deletes(lease, [paths.manifest_revision_link(*item) for item in wave])
    await _deletes(lease, [paths.referrer(*item) for item in doomed.referrer_entries])
    await _deletes(lease, [paths.layer_link(*item) for item in doomed.layers])
    await _deletes(lease, [paths.blob_data(d) for d in sorted(doomed.blobs, key=str)])
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


async def _writes(lease: Lease, written: list[tuple[str, bytes]]) -> None:
    """Markers need not reach the disk before the sweep goes on: they only matter while the run
    lives and holds its lease. Whoever reads one (a push's check) reads the same storage the
    run wrote to, which shows a write at once; a crash of the machine that loses some also ends
    the run, whose markers are then void (``guard``) and whose deletes were all made after every
    marker was visible."""
    for start in range(0, len(written), BATCH):
        await lease.check()
        await lease.driver.put_many(written[start : start + BATCH], durable=False)


async def _deletes(lease: Lease, files: list[str]) -> None:
    """Batch by batch, each after a lease check; a batch is one driver call (on S3 one
    ``DeleteObjects``), and its objects' directories go with them."""
    for start in range(0, len(files), BATCH):
        await lease.check()
        await lease.driver.delete_many(files[start : start + BATCH])
