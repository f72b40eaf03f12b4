"""Metric updates summed in the worker and written to the shared files a few times a second.

Each sample written to prometheus_client's multiprocess files costs about a microsecond and a
half of Python, and a small request touches fifteen: a quarter of its own cost. So a request
only adds to plain numbers here, in slots made once per labelled child (``Count``, ``Live``,
``PendingHistogram``) and kept by whoever adds to them, and ``flush`` writes the sums: every
``FLUSH_INTERVAL``, before this worker answers a scrape, and when the worker stops. A scrape
may therefore miss another worker's last fraction of a second (Prometheus scrapes every 15 s or
so), and a worker killed outright (``kill -9``) loses at most that fraction of its counts,
which Prometheus takes as it takes any counter reset; nothing else changes. What it flushed
stays in its files and in every later scrape. Writing each update to the files at once would
lose nothing, but costs about 5.5 µs of CPU more per small request (``bench/OBSERVE.md``), more
than the whole budget for metrics; a quarter second of one worker's counts is the price kept.

Everything here runs on the worker's event loop thread, so nothing needs a lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

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

    def observe_counted(self, counted: Mapping[int, int]) -> int:
        """Observations counted by value (value: how many times): their sum."""
        counts, bounds = self.counts, self.bounds
        added = 0
        for value, times in counted.items():
            counts[bisect_left(bounds, value)] += times
            added += value * times
        self.total += added
        return added

    def flush(self) -> None:
        if not any(self.counts):
            return
        self.child._sum.inc(self.total)
        for index, count in enumerate(self.counts):
            if count:
                self.child._buckets[index].inc(count)
                self.counts[index] = 0
        self.total = 0.0


class Count:
    """What a counter's child (or a summed gauge's) gained since the last flush: a request adds
    to ``value``, one attribute, and nothing else."""

    __slots__ = ("child", "value")

    def __init__(self, child: Counter | Gauge) -> None:
        self.child = child
        self.value = 0.0

    def flush(self) -> None:
        if self.value:
            value, self.value = self.value, 0.0
            self.child.inc(value)


class Live:
    """A gauge of what goes on now in this worker (requests in flight): its value, set on the
    child at each flush when it changed."""

    __slots__ = ("child", "value", "written")

    def __init__(self, child: Gauge) -> None:
        self.child = child
        self.value = 0
        self.written = 0

    def flush(self) -> None:
        if self.value != self.written:
            self.written = self.value
            self.child.set(self.value)


class Tally:
    """Every slot a worker adds to, each made once for its child, written out by ``flush``."""

    def __init__(self) -> None:
        self.slots: list[Count | Live | PendingHistogram] = []

    def count(self, child: Counter | Gauge) -> Count:
        count = Count(child)
        self.slots.append(count)
        return count

    def live(self, child: Gauge) -> Live:
        live = Live(child)
        self.slots.append(live)
        return live

    def histogram(self, child: Histogram) -> PendingHistogram:
        pending = PendingHistogram(child)
        self.slots.append(pending)
        return pending

    def flush(self) -> None:
        for slot in self.slots:
            slot.flush()
