"""The registry's Prometheus metrics.

The HTTP series carry CNCF Distribution 3's names, labels, label values and buckets, so a
dashboard made for Distribution shows the registry's numbers: ``handler`` is the route's name
(never a path: whatever clients send, the series stay few), ``method`` is lower case, ``code``
the status. The others are the registry's own and say so in their help text.

Metrics are created per application (no import-time registry). With the workers' shared
directory set (``workers.py``) every sample goes to that worker's files and a scrape sums all
of them; without it (one process, tests in-process) the application's own registry holds them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .tally import Count, Live, PendingHistogram, Tally
from .workers import DIRECTORY_ENV, SINCE_ENV, forget_dead_workers

HANDLERS = (
    "base", "manifest", "tags", "blob", "blob_upload", "blob_upload_chunk", "catalog", "referrers",
)  # fmt: skip
"""Distribution's route names, and ``referrers`` for the route Distribution lacks."""
OTHER_HANDLERS = ("extension", "health", "search", "token", "unmatched")
"""The registry's other paths (``/v2/.../_dockyard/...``; ``/``, ``/readyz``; ``/v1/search``;
the built-in token server), and every path that names no route, counted together."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
SIZE_BUCKETS = tuple(float(1024 << shift) for shift in range(22))
"""1 KiB to 2 GiB, doubling: Distribution's request and response size buckets."""
_INTEGRAL_BOUND = re.compile(rb'le="([0-9]+)\.0"')
STORAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


METHODS = frozenset({"get", "head", "put", "post", "patch", "delete", "options"})
"""Methods counted by name; any other a client sends is ``other``: the series stay bounded."""
BODY_METHODS = frozenset({"put", "post", "patch"})
"""The methods whose request bodies are content; the API reads no other request's body."""
CONTENT_TYPES = {"blob": "blob", "blob_upload": "blob", "blob_upload_chunk": "blob", "manifest": "manifest"}
"""The handlers whose bodies are content, for the bytes pushed and pulled."""


class RequestSeries:
    """One handler and method's slots, looked up once: ``labels()`` is costly per request.

    A request adds to its status's count and its duration's bucket at once. Its sizes are only
    counted by exact value (``request_sizes``, ``response_sizes``) and put in their buckets by
    ``settle``, before each flush: small requests come in a few sizes over and over, so a
    request costs one dictionary update per size rather than a bisection and a sum. The
    dictionaries hold at most one entry per size seen since the last flush."""

    __slots__ = (
        "duration", "handler", "in_flight", "method", "metrics", "pulled", "pushed", "request_size",
        "request_sizes", "requests", "response_size", "response_sizes",
    )  # fmt: skip

    def __init__(self, metrics: Metrics, handler: str, method: str) -> None:
        content = CONTENT_TYPES.get(handler)
        self.metrics = metrics
        self.handler = handler
        self.method = method
        """Lower case, or ``other``."""
        self.in_flight = metrics.live(handler)
        """Shared by every method of the handler."""
        self.requests: dict[int, Count] = {}
        """By status, each added the first time a request ends with it."""
        self.duration = metrics.histogram(metrics.duration, handler, method)
        self.request_size = metrics.histogram(metrics.request_size, handler)
        self.response_size = metrics.histogram(metrics.response_size, handler)
        self.request_sizes: defaultdict[int, int] = defaultdict(int)
        self.response_sizes: defaultdict[int, int] = defaultdict(int)
        pushed = metrics.count(metrics.pushed_bytes, content) if content is not None else None
        self.pushed = pushed if method in BODY_METHODS else None
        """The bytes pushed (request bodies) for content handlers' methods that send content
        (the series is shown from the first request of any), else None: ``PushSeries`` adds."""
        self.pulled = (
            metrics.count(metrics.pulled_bytes, content) if content is not None and method == "get" else None
        )
        """The bytes pulled (GET response bodies) for content handlers, else None: the sum of
        the response sizes, added by ``settle``."""

    def record(self, status: int, seconds: float, head: int, body_in: int, body_out: int) -> None:
        """A finished request's every update (``head``: the size of its request line and headers).
        The duration's is written out here rather than through ``PendingHistogram.observe``: a
        call less on every request. A status not seen before is found by ``KeyError``, which
        costs nothing until raised, where a ``get`` would cost a call on every request."""
        try:
            self.requests[status].value += 1
        except KeyError:
            self._first(status)
        histogram = self.duration
        histogram.counts[bisect_left(histogram.bounds, seconds)] += 1  # the first bucket with le >= value
        histogram.total += seconds
        self.request_sizes[head + body_in] += 1
        self.response_sizes[body_out] += 1

    def _first(self, status: int) -> None:
        metrics = self.metrics
        count = metrics.count(metrics.requests, str(status), self.handler, self.method)
        self.requests[status] = count
        count.value += 1

    def settle(self) -> None:
        """The sizes counted since the last flush, into their histograms (and the bytes pulled)."""
        if self.request_sizes:
            self.request_size.observe_counted(self.request_sizes)
            self.request_sizes.clear()
        if self.response_sizes:
            pulled = self.response_size.observe_counted(self.response_sizes)
            if self.pulled is not None:
                self.pulled.value += pulled
            self.response_sizes.clear()


class PushSeries(RequestSeries):
    """The series of a method that sends content (PUT, POST, PATCH) to a content handler: its
    requests add their bodies' bytes to those pushed."""

    __slots__ = ()

    def record(self, status: int, seconds: float, head: int, body_in: int, body_out: int) -> None:
        super().record(status, seconds, head, body_in, body_out)
        assert self.pushed is not None
        self.pushed.value += body_in


class _WorkersFiles(MultiProcessCollector):
    """Every worker's metric files merged, but for files still being made: a worker starting
    creates its file empty and sizes it a moment later, and prometheus_client fails to read an
    empty one (a 500 for a scrape that came between). Such a file holds no value yet."""

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):  # as MultiProcessCollector lists them
            with contextlib.suppress(FileNotFoundError):  # a dead worker's, just forgotten
                if os.path.getsize(path) >= _SIZED:
                    files.append(path)
        return self.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]


_SIZED = 8
"""Bytes of a metric file's header, which prometheus_client writes once it has sized the file."""


class Metrics:
    """Every metric the registry keeps, and the exposition a scrape returns."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call] # no ``_created`` series: Distribution has none
        self.directory = os.environ.get(DIRECTORY_ENV) or None
        self.since = float(os.environ.get(SINCE_ENV) or time.time())
        """When these figures started: in every worker, the registry's start."""
        self.registry = CollectorRegistry(auto_describe=True)
        if self.directory is not None:
            # prometheus_client asks the process id on every sample written, to notice a fork;
            # a worker never forks after this, and that system call was a third of the cost.
            pid = os.getpid()
            values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid)  # type: ignore[no-untyped-call]
            _WorkersFiles(self.registry, path=self.directory)  # type: ignore[no-untyped-call]
        own = None if self.directory is not None else self.registry
        self.requests = Counter(
            "registry_http_requests_total",
            "Total number of HTTP requests made.",
            ["code", "handler", "method"],
            registry=own,
        )
        self.duration = Histogram(
            "registry_http_request_duration_seconds",
            "The HTTP request latencies in seconds.",
            ["handler", "method"],
            buckets=DURATION_BUCKETS,
            registry=own,
        )
        self.request_size = Histogram(
            "registry_http_request_size_bytes",
            "The HTTP request sizes in bytes.",
            ["handler"],
            buckets=SIZE_BUCKETS,
            registry=own,
        )
        self.response_size = Histogram(
            "registry_http_response_size_bytes",
            "The HTTP response sizes in bytes.",
            ["handler"],
            buckets=SIZE_BUCKETS,
            registry=own,
        )
        self.in_flight = Gauge(
            "registry_http_in_flight_requests",
            "The in-flight HTTP requests",
            ["handler"],
            multiprocess_mode="livesum",
            registry=own,
        )
        self.pushed_bytes = Counter(
            "registry_pushed_bytes_total",
            "Bytes of blobs and manifests clients sent to the registry (request bodies).",
            ["type"],
            registry=own,
        )
        self.pulled_bytes = Counter(
            "registry_pulled_bytes_total",
            "Bytes of blobs and manifests the registry sent to clients (response bodies; "
            "blobs served by a storage redirect or by nginx through http.accelredirect are not counted).",
            ["type"],
            registry=own,
        )
        self.uploads = Gauge(
            "registry_uploads_in_progress",
            "Blob upload sessions opened since the registry started and not yet finished, "
            "cancelled or purged.",
            multiprocess_mode="sum",
            registry=own,
        )
        self.storage_seconds = Histogram(
            "registry_storage_action_seconds",
            "The number of seconds that the storage action takes",
            ["action", "driver"],
            buckets=STORAGE_BUCKETS,
            registry=own,
        )
        self.storage_errors = Counter(
            "registry_storage_action_errors_total",
            "Storage driver calls that failed, by action and error.",
            ["action", "driver", "error"],
            registry=own,
        )
        self.auth = Counter(
            "registry_auth_requests_total",
            "Access decisions, by credentials presented (basic, bearer, none) and outcome "
            "(granted, challenged, denied).",
            ["credentials", "outcome"],
            registry=own,
        )
        self.notification_events = Counter(
            "registry_notifications_events_total",
            "Webhook events by endpoint and outcome: sent (the endpoint accepted them) or dropped "
            "(the oldest, past the endpoint's queue bound).",
            ["endpoint", "outcome"],
            registry=own,
        )
        self.notification_errors = Counter(
            "registry_notifications_errors_total",
            "Webhook posts that failed (no answer, or not 2xx) and will be retried.",
            ["endpoint"],
            registry=own,
        )
        self.tally = Tally()
        self.known_series: dict[tuple[str, str], RequestSeries] = {}
        """By handler and method as sent: what ``series`` made, for a lookup without a call."""
        self._series: list[RequestSeries] = []
        """Each series once, to settle before a flush."""
        self._in_flight: dict[str, Live] = {}
        self._counts: dict[tuple[Counter | Gauge, tuple[str, ...]], Count] = {}
        self._histograms: dict[tuple[Histogram, tuple[str, ...]], PendingHistogram] = {}
        for handler in (*HANDLERS, *OTHER_HANDLERS):
            # Present from the start, as Distribution's are: a dashboard sees zero, not nothing.
            self.live(handler)

    def series(self, handler: str, method: str) -> RequestSeries:
        """``handler`` must be one of the fixed names; ``method`` may be anything a client sent
        (kept as sent: a client's few spellings each find their series at once)."""
        key = (handler, method)
        found = self.known_series.get(key)
        if found is None:
            label = method.lower()
            if label not in METHODS:
                label = "other"
            found = self.known_series.get((handler, label))
            if found is None:
                pushes = label in BODY_METHODS and handler in CONTENT_TYPES
                found = (PushSeries if pushes else RequestSeries)(self, handler, label)
                self.known_series[(handler, label)] = found
                self._series.append(found)
            if len(self.known_series) < 1000:  # unknown methods: the series stay few, the keys too
                self.known_series[key] = found
        return found

    def live(self, handler: str) -> Live:
        """The in-flight gauge's slot of ``handler``."""
        found = self._in_flight.get(handler)
        if found is None:
            found = self._in_flight[handler] = self.tally.live(self.in_flight.labels(handler))
        return found

    def histogram(self, histogram: Histogram, *labels: str) -> PendingHistogram:
        """A histogram child's slot for bounded label values."""
        key = (histogram, labels)
        found = self._histograms.get(key)
        if found is None:
            found = self._histograms[key] = self.tally.histogram(histogram.labels(*labels))
        return found

    def count(self, counter: Counter | Gauge, *labels: str) -> Count:
        """A counter child's (or summed gauge child's) slot for bounded label values, made once:
        keep it, and add to its ``value``."""
        key = (counter, labels)
        found = self._counts.get(key)
        if found is None:
            found = self._counts[key] = self.tally.count(counter.labels(*labels) if labels else counter)
        return found

    def add(self, counter: Counter | Gauge, *labels: str, amount: float = 1.0) -> None:
        """Add to a counter's (or summed gauge's) child, for what is too rare to keep its slot."""
        self.count(counter, *labels).value += amount

    def flush(self) -> None:
        for series in self._series:
            series.settle()
        self.tally.flush()

    def exposition(self) -> bytes:
        """Reads every worker's files: call it in a thread, after ``flush`` on the loop."""
        if self.directory is not None:
            forget_dead_workers(Path(self.directory))
        # Bucket bounds as Go writes them (le="1", not Python's le="1.0"): a dashboard's
        # le="1" selector must find the registry's buckets as it finds Distribution's.
        return _INTEGRAL_BOUND.sub(rb'le="\1"', generate_latest(self.registry))
