"""The shared record of repository names: what a worker writes, another reads back, and what it
refuses to trust."""

from __future__ import annotations

import pytest

from registry.references import RepositoryName
from registry.ui.names import CLAIM_SECONDS, CLAIM_WALKS, REFRESH_SECONDS, WALK_SHARE, Walk


def test_a_record_reads_back_as_written() -> None:
    walk = Walk([RepositoryName("a/b"), RepositoryName("team/app")], 1_700_000_000.25, 0.5)
    assert Walk.parse(walk.record()) == walk
    assert Walk.parse(Walk([], 1_700_000_000.0, 0.0).record()) == Walk([], 1_700_000_000.0, 0.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"some other file\nteam/app",
        b"dockyard-repository-names 2 1700000000.0 0.5\nteam/app",  # a later format
        b"dockyard-repository-names 1 1700000000.0\nteam/app",
        b"dockyard-repository-names 1 1700000000.0 inf\nteam/app",  # would never grow old
        b"dockyard-repository-names 1 nan 0.5\nteam/app",
        b"dockyard-repository-names 1 1700000000.0 -1\nteam/app",
    ],
)
def test_a_record_not_of_this_format_is_not_read(data: bytes) -> None:
    assert Walk.parse(data) is None


def test_only_valid_names_are_read_in_order() -> None:
    data = b"dockyard-repository-names 1 1700000000.0 0.5\nzeta/app\n../../etc\nBad/Name\n\nalpha/app"
    walk = Walk.parse(data)
    assert walk is not None
    assert walk.names == ["alpha/app", "zeta/app"]


def test_a_record_grows_old_with_its_walk() -> None:
    quick = Walk([], 1000.0, 0.1)
    assert quick.fresh(1000.0 + REFRESH_SECONDS - 0.5)
    assert not quick.fresh(1000.0 + REFRESH_SECONDS)
    slow = Walk([], 1000.0, 60.0)  # a slow storage: walked at most a tenth of the time
    assert slow.fresh(1000.0 + WALK_SHARE * 60.0 - 1)
    assert not slow.fresh(1000.0 + WALK_SHARE * 60.0)
    assert not quick.fresh(1000.0 - 3600)  # written by a clock an hour ahead


def test_a_claim_keeps_the_old_names_recent_while_one_worker_walks() -> None:
    old = Walk([RepositoryName("team/app")], 1000.0, 30.0)
    now = 1000.0 + WALK_SHARE * 30.0 + 50  # long stale
    claim = old.claimed(now)
    assert (claim.names, claim.took) == (old.names, old.took)
    holds = CLAIM_WALKS * 30.0 + CLAIM_SECONDS
    assert claim.fresh(now)
    assert claim.fresh(now + holds - 0.5)
    assert not claim.fresh(now + holds + 0.5)  # the walker is gone: the next one walks
    quick = Walk([], 1000.0, 0.0).claimed(now)
    assert quick.fresh(now + CLAIM_SECONDS - 0.5)
    assert not quick.fresh(now + CLAIM_SECONDS + 0.5)
