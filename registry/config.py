"""Configuration in CNCF Distribution's ``config.yml`` format, with ``REGISTRY_*`` overrides.

An existing Distribution config for a filesystem registry loads unchanged:
sections and keys the registry does not implement are named in one warning, and
every problem that makes the config unusable is reported at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EMBEDDED_DEFAULT: dict[str, Any] = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": "./data"}, "delete": {"enabled": True}},
    "http": {"addr": "0.0.0.0:5000"},
}
"""What ``dockyard serve`` runs with no config file: data under ./data, deletes enabled."""

CONFIG_ENV = "DOCKYARD_CONFIG"
"""How ``dockyard serve`` tells its worker processes which config file to load (empty: the
embedded default)."""
ENV_PREFIX = "REGISTRY_"
STORAGE_DRIVERS = ("filesystem", "s3", "inmemory")
STORAGE_OPTIONS = ("delete", "maintenance", "redirect", "cache", "tag")
IMPLEMENTED_SECTIONS = {
    "version", "log", "loglevel", "storage", "http", "catalog", "validation", "auth", "tokenserver",
}  # fmt: skip

LOG_LEVEL_ALIASES = {"panic": "error", "fatal": "error", "warning": "warn", "trace": "debug"}
"""The other level names Distribution's logger accepts, as the nearest level the registry has."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], config: Config | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.config = config  # what parsed despite the problems, for checks that need a config


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    formatter: str = "text"
    fields: dict[str, str] = field(default_factory=dict)
    access_log: bool = True


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dry_run: bool = False


@dataclass(frozen=True)
class StorageConfig:
    driver: str = "filesystem"
    parameters: dict[str, Any] = field(default_factory=dict)
    delete_enabled: bool = False
    redirect: bool = True
    read_only: bool = False
    upload_purging: UploadPurging = field(default_factory=UploadPurging)


@dataclass(frozen=True)
class HTTPConfig:
    addr: str = ":5000"
    host: str | None = None
    relative_urls: bool = False
    secret: str | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)
    drain_timeout: float = 20.0
    """Seconds requests in flight get to finish after SIGTERM before their connections are
    closed (Distribution's ``draintimeout``). Bounded by default: a stalled client must not hold
    a restart, and an interrupted upload resumes; 20 s plus the few seconds of exiting fit
    Kubernetes' default 30 s grace period and the shipped units' stop timeouts."""


@dataclass(frozen=True)
class ValidationConfig:
    urls_allow: tuple[str, ...] = ()
    urls_deny: tuple[str, ...] = ()
    index_children: str = "all"
    index_platforms: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Config:
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    log: LogConfig = field(default_factory=LogConfig)
    catalog_max_entries: int = 1000
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    auth: dict[str, Any] | None = None
    tokenserver: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    source: str = "embedded default"


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or the embedded default when None), apply ``REGISTRY_*`` overrides from
    ``environ`` and validate; ConfigError lists every problem."""
    environ = os.environ if environ is None else environ
    if path is None:
        raw: Any = _deep_copy(EMBEDDED_DEFAULT)
        source = "embedded default"
    else:
        source = str(path)
        try:
            raw = _load_yaml(Path(path).read_text())
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the configuration must be a mapping"])
    problems: list[str] = []
    for key, value in sorted(environ.items()):
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
            _apply_override(raw, key[len(ENV_PREFIX) :].lower().split("_"), value, key, problems)
    config = _Parser(raw, problems).parse(source)
    if problems:
        raise ConfigError(problems, config)
    return config


def parse_duration(value: object) -> float:
    """Seconds in a Go duration string such as ``168h``, ``2h10m`` or ``1.5s``."""
    if isinstance(value, str):
        text = value.strip()
        if text == "0":  # the one unitless duration Go accepts
            return 0.0
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    raise ValueError(f"{value!r} is not a duration such as 45m, 2h10m or 168h")


def _apply_override(raw: dict[str, Any], keys: list[str], value: str, name: str, problems: list[str]) -> None:
    node: Any = raw
    for key in keys[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            problems.append(f"{name}: {key} is not a section")
            return
        node = child
    try:
        node[keys[-1]] = _load_yaml(value) if value else ""
    except yaml.YAMLError:
        node[keys[-1]] = value


def _load_yaml(text: str) -> Any:
    """YAML with every scalar kept as the text written, as Distribution reads its typed config:
    a secret ``0123`` stays "0123" (not octal 83), ``yes`` stays "yes". Each key's reader turns
    the text into the type it needs."""
    return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str, list, dict


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    return value


class _Parser:
    """Turns the raw mapping into Config, collecting problems and unsupported keys."""

    def __init__(self, raw: dict[str, Any], problems: list[str]) -> None:
        self.raw = raw
        self.problems = problems
        self.unsupported: list[str] = []

    def parse(self, source: str) -> Config:
        raw = self.raw
        if "version" not in raw:
            self.problems.append("version: required (use 0.1)")
        elif str(raw["version"]) != "0.1":
            self.problems.append(f"version: {raw['version']!r} is not supported (use 0.1)")
        self.unsupported += sorted(str(k) for k in raw if k not in IMPLEMENTED_SECTIONS)
        auth = self._section(raw, "auth")
        tokenserver = self._section(raw, "tokenserver")
        storage = self._storage()
        http = self._http()
        log = self._log()
        catalog_max_entries = self._catalog()
        validation = self._validation()
        warnings: tuple[str, ...] = ()
        if self.unsupported:
            warnings = (
                "these configuration keys are not supported and have no effect: "
                + ", ".join(self.unsupported),
            )
        return Config(
            storage=storage,
            http=http,
            log=log,
            catalog_max_entries=catalog_max_entries,
            validation=validation,
            auth=auth or None,
            tokenserver=tokenserver or None,
            warnings=warnings,
            source=source,
        )

    def _section(self, parent: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
        value = parent.get(key)
        if value is None or value == "":  # a key with nothing under it
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{where}{key}: must be a mapping")
            return {}
        return value

    def _flag(self, section: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = section.get(key, default)
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.problems.append(f"{where}.{key}: must be true or false")
            return default
        return value

    def _duration(self, section: Mapping[str, Any], key: str, where: str, default: float) -> float:
        if key not in section:
            return default
        try:
            return parse_duration(section[key])
        except ValueError as exc:
            self.problems.append(f"{where}.{key}: {exc}")
            return default

    def _unknown(self, section: Mapping[str, Any], known: set[str], where: str) -> None:
        self.unsupported += [f"{where}.{k}" for k in sorted(map(str, section)) if k not in known]

    def _storage(self) -> StorageConfig:
        if "storage" not in self.raw:
            self.problems.append("storage: required (e.g. storage.filesystem.rootdirectory)")
            return StorageConfig()
        storage = self._section(self.raw, "storage")
        drivers = [k for k in storage if k not in STORAGE_OPTIONS]
        if len(drivers) != 1:
            self.problems.append(
                f"storage: configure exactly one driver (found {', '.join(drivers) or 'none'}; "
                f"supported: {', '.join(STORAGE_DRIVERS)})"
            )
            return StorageConfig()
        driver = drivers[0]
        if driver not in STORAGE_DRIVERS:
            self.problems.append(
                f"storage.{driver}: unsupported driver (supported: {', '.join(STORAGE_DRIVERS)})"
            )
        parameters = storage[driver] or {}
        if not isinstance(parameters, dict):
            self.problems.append(f"storage.{driver}: must be a mapping of driver parameters")
            parameters = {}
        delete = self._section(storage, "delete", "storage.")
        redirect = self._section(storage, "redirect", "storage.")
        maintenance = self._section(storage, "maintenance", "storage.")
        purging = self._section(maintenance, "uploadpurging", "storage.maintenance.")
        readonly = self._section(maintenance, "readonly", "storage.maintenance.")
        self._unknown(maintenance, {"uploadpurging", "readonly"}, "storage.maintenance")
        self._unknown(storage, {driver, "delete", "redirect", "maintenance"}, "storage")
        where = "storage.maintenance.uploadpurging"
        defaults = UploadPurging()
        upload_purging = UploadPurging(
            enabled=self._flag(purging, "enabled", where, defaults.enabled),
            age=self._duration(purging, "age", where, defaults.age),
            interval=self._duration(purging, "interval", where, defaults.interval),
            dry_run=self._flag(purging, "dryrun", where, defaults.dry_run),
        )
        if upload_purging.interval <= 0:
            self.problems.append(f"{where}.interval: must be positive")
        return StorageConfig(
            driver=driver,
            parameters=dict(parameters),
            delete_enabled=self._flag(delete, "enabled", "storage.delete", False),
            redirect=not self._flag(redirect, "disable", "storage.redirect", False),
            read_only=self._flag(readonly, "enabled", "storage.maintenance.readonly", False),
            upload_purging=upload_purging,
        )

    def _http(self) -> HTTPConfig:
        http = self._section(self.raw, "http")
        known = {"addr", "host", "relativeurls", "secret", "headers", "net", "draintimeout"}
        self._unknown(http, known, "http")
        addr = str(http.get("addr") or ":5000")
        port = re.fullmatch(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})", addr)
        if not port or int(port.group(1)) > 65535:
            self.problems.append(f"http.addr: {addr!r} is not HOST:PORT")
        if http.get("net", "tcp") != "tcp":
            self.problems.append("http.net: only tcp is supported")
        host = http.get("host")
        if host is not None and (not isinstance(host, str) or not re.match(r"https?://[^/]+", host)):
            self.problems.append("http.host: must be a URL such as https://registry.example.com")
            host = None
        headers: dict[str, list[str]] = {}
        for name, value in self._section(http, "headers", "http.").items():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str | int) for v in values):
                self.problems.append(f"http.headers.{name}: values must be strings")
                continue
            headers[str(name)] = [str(v) for v in values]
        secret = http.get("secret")
        return HTTPConfig(
            addr=addr,
            host=host.rstrip("/") if host else None,
            relative_urls=self._flag(http, "relativeurls", "http", False),
            secret=str(secret) if secret else None,
            headers=headers,
            drain_timeout=self._duration(http, "draintimeout", "http", HTTPConfig.drain_timeout),
        )

    def _log(self) -> LogConfig:
        log = self._section(self.raw, "log")
        self._unknown(log, {"level", "formatter", "fields", "accesslog"}, "log")
        level = str(log.get("level") or self.raw.get("loglevel") or "info").lower()
        level = LOG_LEVEL_ALIASES.get(level, level)
        if level not in {"error", "warn", "info", "debug"}:
            self.problems.append(f"log.level: {level!r} is not one of error, warn, info, debug")
        formatter = str(log.get("formatter") or "text").lower()
        if formatter == "logstash":
            formatter = "json"
        if formatter not in {"text", "json"}:
            self.problems.append(f"log.formatter: {formatter!r} is not text or json")
        fields = self._section(log, "fields", "log.")
        accesslog = self._section(log, "accesslog", "log.")
        return LogConfig(
            level=level,
            formatter=formatter,
            fields={str(k): str(v) for k, v in fields.items()},
            access_log=not self._flag(accesslog, "disabled", "log.accesslog", False),
        )

    def _catalog(self) -> int:
        catalog = self._section(self.raw, "catalog")
        self._unknown(catalog, {"maxentries"}, "catalog")
        value = catalog.get("maxentries", 1000)
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.problems.append("catalog.maxentries: must be a positive integer")
            return 1000
        return value

    def _validation(self) -> ValidationConfig:
        validation = self._section(self.raw, "validation")
        self._unknown(validation, {"disabled", "enabled", "manifests"}, "validation")
        disabled = self._flag(validation, "disabled", "validation", False)
        if "enabled" in validation:
            disabled = not self._flag(validation, "enabled", "validation", True)
        manifests = self._section(validation, "manifests", "validation.")
        urls = self._section(manifests, "urls", "validation.manifests.")
        indexes = self._section(manifests, "indexes", "validation.manifests.")
        if disabled:
            return ValidationConfig()
        allow = self._patterns(urls, "allow")
        deny = self._patterns(urls, "deny")
        policy = str(indexes.get("platforms", "all")).lower()
        if policy not in {"all", "none", "list"}:
            self.problems.append("validation.manifests.indexes.platforms: must be all, none or list")
            policy = "all"
        platforms = []
        for entry in indexes.get("platformlist") or []:
            if not isinstance(entry, dict) or not {"os", "architecture"} <= set(entry):
                self.problems.append(
                    "validation.manifests.indexes.platformlist: entries need os and architecture"
                )
                continue
            platforms.append((str(entry["os"]), str(entry["architecture"])))
        return ValidationConfig(allow, deny, policy, tuple(platforms))

    def _patterns(self, urls: Mapping[str, Any], key: str) -> tuple[str, ...]:
        values = urls.get(key) or []
        if not isinstance(values, list):
            self.problems.append(f"validation.manifests.urls.{key}: must be a list of regular expressions")
            return ()
        for value in values:
            try:
                re.compile(str(value))
            except re.error as exc:
                self.problems.append(f"validation.manifests.urls.{key}: {value!r}: {exc}")
        return tuple(str(v) for v in values)
