"""The access log written without a ``LogRecord`` says exactly what ``logging`` would have."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest

from registry.config import LogConfig
from registry.logs import JSONFormatter, logging_config
from registry.observability.accesslog import AccessLog

FIELDS: dict[str, object] = {
    "client": "203.0.113.7",
    "account": "alice",
    "method": "GET",
    "path": '/v2/a b"c/manifests/v1',
    "status": 200,
    "bytes_in": 0,
    "bytes_out": 1234,
    "duration": 0.000321,
    "route": "manifest",
    "repository": "team/app",
    "reference": "v1",
    "request_id": "0f" * 16,
    "user_agent": "docker/27.0 go/go1.22",
}
SUMMARY = "GET /v2/team/app/manifests/v1 200"
TEXT_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture
def logger() -> logging.Logger:
    """A logger of its own, outside the tree (where pytest adds its capturing handlers)."""
    return logging.Logger("dockyard-test.access", logging.INFO)


def stream_handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    return handler, stream


def text_formatter() -> logging.Formatter:
    config = logging_config(LogConfig(fields={"service": "registry"}))
    return logging.Formatter(config["formatters"]["default"]["format"])


def json_formatter() -> JSONFormatter:
    return JSONFormatter({"service": "registry"})


def both_ways(
    logger: logging.Logger, stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A line written directly, then one through a LogRecord (a filter forces that way)."""
    records: list[logging.LogRecord] = []
    make_record = logger.makeRecord

    def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(make_record(*args, **kwargs))
        return records[-1]

    monkeypatch.setattr(logger, "makeRecord", counted)
    access_log = AccessLog(logger)
    access_log.write(dict(FIELDS), SUMMARY)
    assert not records
    logger.addFilter(lambda record: True)
    access_log.write(dict(FIELDS), SUMMARY)
    assert len(records) == 1
    direct, recorded = stream.getvalue().splitlines()
    return direct, recorded


def test_a_text_line_is_the_one_logging_writes(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, stream = stream_handler(text_formatter())
    logger.addHandler(handler)
    direct, recorded = both_ways(logger, stream, monkeypatch)
    assert TEXT_TIME.match(direct)
    assert TEXT_TIME.match(recorded)
    assert TEXT_TIME.sub("", direct) == TEXT_TIME.sub("", recorded)
    assert TEXT_TIME.sub("", direct) == (
        'INFO dockyard-test.access: 203.0.113.7 alice "GET /v2/a b\\"c/manifests/v1" 200 0 1234 '
        "0.000321s route=manifest repository=team/app reference=v1 "
        f'request_id={"0f" * 16} user_agent="docker/27.0 go/go1.22" service=registry'
    )


def test_a_json_line_is_the_one_logging_writes(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, stream = stream_handler(json_formatter())
    logger.addHandler(handler)
    direct, recorded = (json.loads(line) for line in both_ways(logger, stream, monkeypatch))

    def without_time(entry: dict[str, Any]) -> dict[str, Any]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
        return entry

    assert without_time(direct) == without_time(recorded)
    assert direct == {
        "level": "info", "logger": "dockyard-test.access", "service": "registry", "msg": SUMMARY,
        **FIELDS,
    }  # fmt: skip


def test_a_change_to_the_handlers_takes_effect_at_once(logger: logging.Logger) -> None:
    first, first_stream = stream_handler(text_formatter())
    logger.addHandler(first)
    access_log = AccessLog(logger)
    access_log.write(dict(FIELDS), SUMMARY)
    second, second_stream = stream_handler(json_formatter())
    logger.addHandler(second)
    access_log.write(dict(FIELDS), SUMMARY)
    second.setLevel(logging.WARNING)
    access_log.write(dict(FIELDS), SUMMARY)
    logger.removeHandler(first)
    access_log.write(dict(FIELDS), SUMMARY)
    assert len(first_stream.getvalue().splitlines()) == 3
    assert len(second_stream.getvalue().splitlines()) == 1


def test_handlers_it_does_not_know_get_a_record(logger: logging.Logger) -> None:
    records: list[logging.LogRecord] = []

    class Keeping(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.addHandler(Keeping())
    AccessLog(logger).write(dict(FIELDS), SUMMARY)
    (record,) = records
    assert record.getMessage().startswith('203.0.113.7 alice "GET ')
    assert record.__dict__["data"] == FIELDS
    assert record.__dict__["summary"] == SUMMARY
