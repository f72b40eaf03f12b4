"""Garbage collection with ``--grace-period 0s`` in another process, again and again, while pushers
reuse blobs nothing refers to (skipped after HEAD, or mounted): every acknowledged image stays
whole, byte for byte (see ``stress``)."""

from __future__ import annotations

import random

import pytest

from tests.integrity.layout import check_layout
from tests.lifecycle.commands import garbage_collect
from tests.lifecycle.stress import Collections, Ledger, run_load, verify_live
from tests.support.registry import StartRegistry

pytestmark = pytest.mark.slow

LOAD_SECONDS = 50
MOST_SECONDS = 300
"""Bound on going on until the load proved enough, on a slow machine (not a timing assertion)."""
REPOSITORIES = ["stress/a", "stress/b", "stress/c", "stress/d"]


def shortfall(ledger: Ledger, collections: Collections) -> list[str]:
    """What the load has yet to prove: runs that deleted while pushes reused what they deleted,
    and pushes that raced a sweep (spared by their records, or refused and pushed again)."""
    counts = ledger.counts
    wanted = {
        "runs": (collections.runs, 5),
        "blobs removed": (collections.blobs_removed, 20),
        "unreferenced blobs reused": (counts["unreferenced blobs reused"], 50),
        "skipped: HEAD said exists": (counts["skipped: HEAD said exists"], 20),
        "mounted": (counts["mounted"], 5),
        "live images": (len(ledger.live), 20),
        "spared or refused": (collections.spared + counts["refused, pushed again"], 1),
    }
    return [f"{name}: {have} < {least}" for name, (have, least) in wanted.items() if have < least]


def test_collection_racing_pushes_never_breaks_an_acknowledged_image(start_registry: StartRegistry) -> None:
    seed = random.randrange(1 << 32)
    registry = start_registry(workers=2)
    ledger, collections = run_load(
        registry.url, registry.config_path, REPOSITORIES, LOAD_SECONDS, seed, shortfall, MOST_SECONDS
    )
    # A failure names the digests involved; the collections that deleted any of them say when.
    failures = ledger.failures[:5]
    assert failures == [], "\n".join([f"seed {seed}", *failures, *collections.removing(failures)])
    assert collections.errors == [], (seed, collections.errors[:2])
    garbage_collect(registry.config_path, "--grace-period", "0s")  # and once more, at rest

    problems = verify_live(registry.url, ledger)[:20]
    assert problems == [], "\n".join([f"seed {seed}", *problems, *collections.removing(problems)])
    assert check_layout(registry.root).problems == [], seed

    print(f"seed {seed}: {dict(ledger.counts)}; {collections}")
    # The load must have proved something.
    assert shortfall(ledger, collections) == [], (seed, ledger.counts, collections)
