"""A storage incident is logged when it starts, counted every minute while it lasts, and logged
when a request shows it over; every refused request gets the condition's 503."""

from __future__ import annotations

import logging

import pytest

from registry.api.incidents import REPORT_INTERVAL, StorageIncidents
from registry.errors import ErrorCode
from storage_drivers import StorageError, StorageFull, StorageReadOnly, StorageUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "registry"]


def test_a_full_storage_logs_its_start_a_count_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    incidents = StorageIncidents(clock)
    with caplog.at_level(logging.INFO, logger="registry"):
        for _ in range(1000):
            error = incidents.refuse(StorageFull("/a", "No space left on device"))
            assert error is not None
            assert error.code is ErrorCode.STORAGE_FULL
            assert error.headers["Retry-After"].isdigit()
        clock.now += REPORT_INTERVAL
        incidents.refuse(StorageFull("/a"))
        incidents.succeeded("GET", reached_storage=True)  # reads work on a full disk
        incidents.succeeded("DELETE", reached_storage=True)  # and so do deletes
        assert incidents.refuse(StorageFull("/a")) is not None
        clock.now += 5
        incidents.succeeded("PUT", reached_storage=True)
        incidents.succeeded("PUT", reached_storage=True)
    messages = _messages(caplog)
    assert len(messages) == 3, messages
    assert messages[0].startswith("storage is full (/a: No space left on device)")
    assert "1001 requests" in messages[1]
    assert messages[2].startswith("storage is full: over after 65 s, 1002 requests refused")
    assert incidents.current == []


def test_each_condition_is_its_own_incident(caplog: pytest.LogCaptureFixture) -> None:
    incidents = StorageIncidents(Clock())
    with caplog.at_level(logging.INFO, logger="registry"):
        read_only = incidents.refuse(StorageReadOnly("/a", "Read-only file system"))
        unavailable = incidents.refuse(StorageUnavailable("/a", "S3 unreachable"))
        assert incidents.refuse(StorageError("/a", "something else")) is None
        assert read_only is not None
        assert read_only.code is ErrorCode.STORAGE_READ_ONLY
        assert unavailable is not None
        assert unavailable.code is ErrorCode.UNAVAILABLE
        incidents.succeeded("GET", reached_storage=False)  # GET /v2/ tells nothing
        assert len(incidents.current) == 2
        incidents.succeeded("GET", reached_storage=True)
        assert [c.name for c in incidents.current] == ["READ_ONLY"]
        incidents.succeeded("PATCH", reached_storage=True)
    assert incidents.current == []
    assert len(_messages(caplog)) == 4
