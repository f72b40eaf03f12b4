"""The summed slots write out what prometheus_client's own ``observe`` and ``inc`` would: the same
exposition, series by series, for requests whose figures fall on, between and past the bucket
bounds, over several flushes; and the storage timing wrapper counts every call once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry.observability.metrics import CONTENT_TYPES, METHODS, Metrics
from registry.observability.storage import ObservedDriver
from storage_drivers import PathNotFound, create_driver

from .conftest import Samples

REQUESTS = [
    # handler, method as sent, status, seconds, head, body in, body out
    ("base", "GET", 200, 0.0004, 180, 0, 2),
    ("base", "GET", 401, 0.005, 200, 0, 0),  # on a bound: counted in that bucket
    ("blob", "HEAD", 200, 0.0050001, 230, 0, 0),
    ("blob", "GET", 200, 61.0, 230, 0, 1024),  # past the last bound: +Inf only
    ("blob", "GET", 200, 2.5, 230, 0, 1025),
    ("blob", "get", 404, 0.01, 231, 0, 157),
    ("manifest", "GET", 200, 0.02, 300, 0, 2 << 30),
    ("manifest", "PUT", 201, 0.3, 300, 724, 0),
    ("manifest", "PUT", 201, 0.3, 300, 1024 - 300, 0),  # head and body on a bound together
    ("blob_upload_chunk", "PATCH", 202, 1.0, 320, 4 << 30, 0),  # past the last size bound
    ("blob_upload_chunk", "PUT", 201, 0.1, 320, 0, 0),
    ("unmatched", "BREW", 404, 0.001, 90, 0, 19),  # any other method: "other"
    ("tags", "GET", 200, 10.0, 200, 0, 50),
]
"""Past, on and between the bounds of ``DURATION_BUCKETS`` and ``SIZE_BUCKETS``."""


def samples(exposition: bytes) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def by_prometheus_client(reference: Metrics, handler: str, method: str, *figures: float) -> None:
    """One request written straight through prometheus_client's children."""
    status, seconds, head, body_in, body_out = figures
    label = method.lower() if method.lower() in METHODS else "other"
    reference.requests.labels(str(int(status)), handler, label).inc()
    reference.duration.labels(handler, label).observe(seconds)
    reference.request_size.labels(handler).observe(head + body_in)
    reference.response_size.labels(handler).observe(body_out)
    content = CONTENT_TYPES.get(handler)
    if content is not None:
        reference.pushed_bytes.labels(content).inc(body_in)
        if label == "get":
            reference.pulled_bytes.labels(content).inc(body_out)


def test_summed_slots_expose_what_prometheus_client_would() -> None:
    ours, reference = Metrics(), Metrics()
    assert ours.directory is None  # each its own registry, in this process
    for round_ in range(3):  # a flush between rounds: the sums go on from the last
        for handler, method, *figures in REQUESTS[round_:]:
            ours.series(handler, method).record(*figures)  # type: ignore[arg-type]
            by_prometheus_client(reference, handler, method, *figures)
        ours.flush()
        expected, found = samples(reference.exposition()), samples(ours.exposition())
        assert sorted(found) == sorted(expected)
        for key, value in expected.items():
            if key[0].endswith("_sum"):
                assert found[key] == pytest.approx(value, rel=1e-12), key  # summed in another order
            else:
                assert found[key] == value, key


def test_every_storage_call_is_timed_once_and_failures_counted(tmp_path: Path) -> None:
    metrics = Metrics()
    driver = ObservedDriver(create_driver("filesystem", {"rootdirectory": str(tmp_path)}), metrics)

    async def calls() -> None:
        await driver.put_content("/a/link", b"content")
        for _ in range(5):
            assert await driver.get_content("/a/link") == b"content"
        with pytest.raises(PathNotFound):
            await driver.get_content("/a/missing")
        assert (await driver.stat("/a/link")).size == 7
        assert await driver.get_many(["/a/link", "/a/missing"]) == [b"content", None]

    before = samples(metrics.exposition())
    action = "registry_storage_action_seconds_count"
    assert before[(action, (("action", "GetContent"), ("driver", "filesystem")))] == 0
    assert (action, (("action", "GetMany"), ("driver", "filesystem"))) not in before  # not yet used
    asyncio.run(calls())
    metrics.flush()
    after = samples(metrics.exposition())
    counts = {key[1][0][1]: value for key, value in after.items() if key[0] == action and value}
    assert counts == {"PutContent": 1, "GetContent": 6, "Stat": 1, "GetMany": 1}
    errors = {
        key[1]: value for key, value in after.items() if key[0] == "registry_storage_action_errors_total"
    }
    assert errors == {(("action", "GetContent"), ("driver", "filesystem"), ("error", "not_found")): 1}
