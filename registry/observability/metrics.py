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

import os
import re
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .workers import DIRECTORY_ENV, forget_dead_workers

HANDLERS = (
    "base", "manifest", "tags", "blob", "blob_upload", "blob_upload_chunk", "catalog", "referrers",
)  # fmt: skip
"""Distribution's route names, and ``referrers`` for the route Distribution lacks."""
OTHER_HANDLERS = ("health", "token", "unmatched")
"""The registry's other paths (``/``, ``/readyz``; the built-in token server), and every path
that names no route, counted together."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
SIZE_BUCKETS = tuple(float(1024 << shift) for shift in range(22))
"""1 KiB to 2 GiB, doubling: Distribution's request and response size buckets."""
_INTEGRAL_BOUND = re.compile(rb'le="([0-9]+)\.0"')
STORAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric the registry keeps, and the exposition a scrape returns."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call] # no ``_created`` series: Distribution has none
        self.directory = os.environ.get(DIRECTORY_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        if self.directory is not None:
            MultiProcessCollector(self.registry, path=self.directory)  # type: ignore[no-untyped-call]
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
            "blobs served by a storage redirect are not counted).",
            ["type"],
            registry=own,
        )
        self.uploads = Gauge(
            "registry_uploads_in_progress",
            "Blob uploads started and not yet finished or cancelled, since the registry started.",
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
        for handler in (*HANDLERS, *OTHER_HANDLERS):
            # Present from the start, as Distribution's are: a dashboard sees zero, not nothing.
            self.in_flight.labels(handler)

    def exposition(self) -> bytes:
        """Reads every worker's files: call it in a thread."""
        if self.directory is not None:
            forget_dead_workers(Path(self.directory))
        # Bucket bounds as Go writes them (le="1", not Python's le="1.0"): a dashboard's
        # le="1" selector must find the registry's buckets as it finds Distribution's.
        return _INTEGRAL_BOUND.sub(rb'le="\1"', generate_latest(self.registry))
