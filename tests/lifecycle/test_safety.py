"""Garbage collection with ``--grace-period 0s`` in another process, again and again, while pushers
reuse blobs nothing refers to (skipped after HEAD, or mounted): every acknowledged image stays
whole, byte for byte (see ``stress``)."""

from __future__ import annotations

import random

import pytest

from tests.integrity.layout import check_layout
from tests.lifecycle.commands import garbage_collect
from tests.lifecycle.stress import run_load, verify_live
from tests.support.registry import StartRegistry

pytestmark = pytest.mark.slow

LOAD_SECONDS = 50
REPOSITORIES = ["stress/a", "stress/b", "stress/c", "stress/d"]


def test_collection_racing_pushes_never_breaks_an_acknowledged_image(start_registry: StartRegistry) -> None:
    seed = random.randrange(1 << 32)
    registry = start_registry(workers=2)
    ledger, collections = run_load(registry.url, registry.config_path, REPOSITORIES, LOAD_SECONDS, seed)
    # A failure names the digests involved; the collections that deleted any of them say when.
    failures = ledger.failures[:5]
    assert failures == [], "\n".join([f"seed {seed}", *failures, *collections.removing(failures)])
    assert collections.errors == [], (seed, collections.errors[:2])
    garbage_collect(registry.config_path, "--grace-period", "0s")  # and once more, at rest

    problems = verify_live(registry.url, ledger)[:20]
    assert problems == [], "\n".join([f"seed {seed}", *problems, *collections.removing(problems)])
    assert check_layout(registry.root).problems == [], seed

    counts = ledger.counts
    print(f"seed {seed}: {dict(counts)}; {collections}")
    # The load must have proved something: runs that deleted while pushes reused what they deleted.
    assert collections.runs >= 5, (seed, collections)
    assert collections.blobs_removed >= 20, (seed, collections)
    assert counts["unreferenced blobs reused"] >= 50, (seed, counts)
    assert counts["skipped: HEAD said exists"] >= 20, (seed, counts)
    assert counts["mounted"] >= 5, (seed, counts)
    assert len(ledger.live) >= 20, (seed, counts)
    # ... and pushes that raced a sweep: spared by their records, or refused and pushed again.
    assert collections.spared + counts["refused, pushed again"] >= 1, (seed, counts, collections)
