"""``log`` (and the former top-level ``loglevel``): level, format, fields, access and audit logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from config_reader import Section

from .base import SectionParser

LOG_LEVEL_ALIASES = {"panic": "error", "fatal": "error", "warning": "warn", "trace": "debug"}
"""The other level names Distribution's logger accepts, as the nearest level the registry has."""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    formatter: str = "text"
    fields: dict[str, str] = field(default_factory=dict)
    access_log: bool = True
    audit_path: str | None = None
    """A file the audit log is appended to, besides the ``registry.audit`` logger."""


class LogParser(SectionParser):
    """Reads ``log``."""

    def _log(self) -> LogConfig:
        log = self.root.section("log")
        log.warn_unknown({"level", "formatter", "fields", "accesslog", "audit"})
        levels = ("error", "warn", "info", "debug")
        if log.given("level") or not self.root.given("loglevel"):
            level = log.choice("level", levels, default="info", aliases=LOG_LEVEL_ALIASES)
        else:  # Distribution's deprecated top-level spelling
            level = self.root.choice("loglevel", levels, default="info", aliases=LOG_LEVEL_ALIASES)
        fields = log.section("fields")
        return LogConfig(
            level=level,
            formatter=log.choice("formatter", ("text", "json"), default="text", aliases={"logstash": "json"}),
            fields={str(k): str(v) for k, v in fields.values.items()},
            access_log=not log.section("accesslog").flag("disabled"),
            audit_path=self._audit_path(log.section("audit")),
        )

    @staticmethod
    def _audit_path(audit: Section) -> str | None:
        audit.reject_unknown({"path"})
        path = audit.string("path")
        if path and not Path(path).parent.is_dir():
            audit.problem("path", f"{Path(path).parent}: no such directory")
        return path or None
