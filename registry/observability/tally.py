"""Metric updates summed in the worker and written to the shared files a few times a second.

Each sample written to prometheus_client's multiprocess files costs about a microsecond and a
half of Python, and a small request touches fifteen: a quarter of its own cost. So a request
only adds to plain numbers here, and ``flush`` writes the sums: every ``FLUSH_INTERVAL``,
before this worker answers a scrape, and when the worker stops. A scrape may therefore miss
another worker's last fraction of a second (Prometheus scrapes every 15 s or so), and a worker
killed outright loses at most that fraction; nothing else changes.

Everything here runs on the worker's event loop thread, so nothing needs a lock.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram

FLUSH_INTERVAL = 0.25


class PendingHistogram:
    """Observations of one histogram child, summed per bucket until the next flush."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        # The child's own bounds (with +Inf last): prometheus_client keeps them, and its sum and
        # bucket values, in these attributes; tests/observability checks them after every push.
        self.bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with value <= le
        self.total += value

    def flush(self) -> None:
        if not any(self.counts):
            return
        self.child._sum.inc(self.total)
        for index, count in enumerate(self.counts):
            if count:
                self.child._buckets[index].inc(count)
                self.counts[index] = 0
        self.total = 0.0


class Tally:
    def __init__(self) -> None:
        self.added: dict[Counter | Gauge, float] = {}
        self.live: dict[Gauge, int] = {}
        """Gauges of what is going on now (requests in flight), set to their value at each flush."""
        self.written: dict[Gauge, int] = {}
        self.histograms: list[PendingHistogram] = []

    def add(self, child: Counter | Gauge, amount: float = 1.0) -> None:
        self.added[child] = self.added.get(child, 0.0) + amount

    def change(self, child: Gauge, step: int) -> None:
        self.live[child] = self.live.get(child, 0) + step

    def histogram(self, child: Histogram) -> PendingHistogram:
        pending = PendingHistogram(child)
        self.histograms.append(pending)
        return pending

    def flush(self) -> None:
        added, self.added = self.added, {}
        for child, amount in added.items():
            child.inc(amount)
        for gauge, value in self.live.items():
            if self.written.get(gauge) != value:
                gauge.set(value)
                self.written[gauge] = value
        for histogram in self.histograms:
            histogram.flush()
