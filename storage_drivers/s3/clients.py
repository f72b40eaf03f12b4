"""Time budgets that end every S3 call within a bounded time, however the S3 server misbehaves.

A hung server (one that accepts connections and never answers) would otherwise hold a
request for botocore's default 60 s read timeout per attempt, five attempts in all. Each
kind of call gets a budget instead:

- ``QUICK`` for calls that move little data (HEAD, GET and PUT of links and manifests,
  listings, single deletes, starting an upload): a stalled server fails them within
  ``QUICK.deadline`` seconds, well inside what a pushing or pulling client waits for.
- ``BULK`` for calls that move or copy up to a part's worth of data, or make the server do
  so (part uploads, the pending tail, server-side copies, completing an upload, batch
  deletes, streamed blob reads): they may run as long as bytes keep flowing, but an
  attempt that makes no progress is abandoned, and retries stop by ``deadline``.

Measured against a SIGSTOPped radosgw: HEAD and small GETs fail after 10 s, a 10 MiB part
upload after about 60 s, a blob read stalled mid-body after about 90 s (its one resume
included); a call in flight when the server wakes up completes normally.

The values are fixed here: Distribution's ``storage.s3`` has no timeout settings to mirror.
``retry_delay`` decides, for the failures the driver treats as transient (errors.is_transient),
starting a retry only if it could still time out before the call's deadline, on the signed path
(lean.py) and for boto3's clients (boto_clients.py) alike. What is left surfaces as
StorageUnavailable (503).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CallBudget:
    """How long one S3 call may take, all attempts included (seconds)."""

    connect: float
    """To open a TCP connection; urllib3 also waits this long, no more, for the server to
    take each piece of a request body."""
    read: float
    """Without a byte of the answer from the server."""
    deadline: float
    """From the call's start: no retry starts that a stalled server could drag past this."""
    attempts: int = 5

    @property
    def worst_attempt(self) -> float:
        return self.connect + self.read


QUICK = CallBudget(connect=3, read=5, deadline=15)
"""A small call fails within 15 s; a stalled server gets two 5 s chances."""
BULK = CallBudget(connect=10, read=30, deadline=100)
"""A transfer fails within 100 s of no progress. A busy server may pause reading a part for
seconds, and take many to store it or copy between parts; past 10 s and 30 s it is stuck."""

BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0


def _backoff(attempt: int) -> float:
    """Full jitter: up to 0.5 s after the first attempt, then 1 s, 2 s, 4 s, 8 s at most."""
    return random.random() * min(BACKOFF_BASE * 2.0 ** (attempt - 1), BACKOFF_MAX)  # noqa: S311


def retry_delay(budget: CallBudget, attempts: int, started: float) -> float | None:
    """Seconds to wait before retrying a transient failure after ``attempts`` attempts of a
    call started at ``started`` (monotonic), or None when the budget allows no more."""
    if attempts >= budget.attempts:
        return None
    delay = _backoff(attempts)
    if time.monotonic() - started + delay + budget.worst_attempt > budget.deadline:
        return None
    return delay
