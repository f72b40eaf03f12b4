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
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            **self.fields,
        }
        data = getattr(record, "data", None)
        if isinstance(data, dict):  # a record of fields (access log, audit): they are the line
            entry["msg"] = getattr(record, "summary", "")
            entry.update(data)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


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
