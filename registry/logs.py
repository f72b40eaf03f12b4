"""Logging as ``log.level`` and ``log.formatter`` (text or json) configure it, for uvicorn too."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .config import LogConfig

LEVELS = {"error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line, with the configured ``log.fields`` in every line."""

    def __init__(self, fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self.fields = fields or {}

    def format(self, record: logging.LogRecord) -> str:
        data = getattr(record, "data", None)
        if isinstance(data, dict):  # a record of fields (access log, audit): they are the line
            return self.line(
                record.name, record.levelname, record.created, getattr(record, "summary", ""), data
            )
        entry = self._head(record.name, record.levelname, record.created)
        entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)

    def line(self, logger: str, level: str, created: float, summary: str, data: dict[str, Any]) -> str:
        """The line of a record of fields: also written without a record (the access log)."""
        entry = self._head(logger, level, created)
        entry["msg"] = summary
        entry.update(data)
        return json.dumps(entry)

    def _head(self, logger: str, level: str, created: float) -> dict[str, Any]:
        msecs = int((created - int(created)) * 1000)  # as LogRecord computes it
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{msecs:03d}Z",
            "level": level.lower(),
            "logger": logger,
            **self.fields,
        }


def logging_config(log: LogConfig) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping, which uvicorn applies in every worker."""
    fields = " ".join(f"{k}={v}" for k, v in log.fields.items())
    text = "%(asctime)s %(levelname)s %(name)s: %(message)s" + (f" {fields}" if fields else "")
    formatter: dict[str, Any] = (
        {"()": JSONFormatter, "fields": log.fields} if log.formatter == "json" else {"format": text}
    )
    level = LEVELS[log.level]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "": {"handlers": ["stderr"], "level": level},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }
