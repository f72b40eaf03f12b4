"""The whole config: each section read by its own module's part of the parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config_reader import Section

from .health import HealthConfig, HealthParser
from .http import HTTPConfig, HTTPParser
from .log import LogConfig, LogParser
from .notifications import NotificationsConfig, NotificationsParser
from .proxy import ProxyParser, Upstream
from .storage import StorageConfig, StorageParser
from .validation import ValidationConfig, ValidationParser

IMPLEMENTED_SECTIONS = {
    "version", "log", "loglevel", "storage", "http", "catalog", "validation", "auth", "tokenserver",
    "proxy",
    "health",
    "notifications",
}  # fmt: skip


@dataclass(frozen=True)
class Config:
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    log: LogConfig = field(default_factory=LogConfig)
    catalog_max_entries: int = 1000
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    auth: dict[str, Any] | None = None
    tokenserver: dict[str, Any] | None = None
    proxy: tuple[Upstream, ...] = ()
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    warnings: tuple[str, ...] = ()
    source: str = "embedded default"


class Parser(
    StorageParser, HTTPParser, LogParser, HealthParser, NotificationsParser, ValidationParser, ProxyParser
):
    """Turns the raw mapping into Config: one method per section, each reading its keys through
    a Section that collects problems and the keys the registry does not implement."""

    def __init__(self, raw: dict[str, Any], problems: list[str]) -> None:
        self.root = Section("", raw, problems)
        self.problems = problems

    def parse(self, source: str) -> Config:
        root = self.root
        if "version" not in root:
            self.problems.append("version: required (use 0.1)")
        elif str(root.values["version"]) != "0.1":
            self.problems.append(f"version: {root.values['version']!r} is not supported (use 0.1)")
        root.warn_unknown(IMPLEMENTED_SECTIONS)
        auth = dict(root.section("auth").values)
        tokenserver = dict(root.section("tokenserver").values)
        storage = self._storage()
        http = self._http()
        log = self._log()
        catalog_max_entries = self._catalog()
        validation = self._validation()
        proxy = self._proxy()
        health = self._health()
        notifications = self._notifications()
        if http.accel_redirect and storage.driver != "filesystem":
            self.problems.append(
                "http.accelredirect: needs the filesystem driver (nginx reads the files itself)"
            )
        warnings: tuple[str, ...] = ()
        if root.unsupported:
            warnings = (
                "these configuration keys are not supported and have no effect: "
                + ", ".join(root.unsupported),
            )
        return Config(
            storage=storage,
            http=http,
            log=log,
            catalog_max_entries=catalog_max_entries,
            validation=validation,
            health=health,
            auth=auth or None,
            tokenserver=tokenserver or None,
            proxy=proxy,
            notifications=notifications,
            warnings=warnings,
            source=source,
        )

    def _catalog(self) -> int:
        catalog = self.root.section("catalog")
        catalog.warn_unknown({"maxentries"})
        return catalog.integer("maxentries", default=1000, minimum=1)
