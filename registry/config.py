"""Configuration in CNCF Distribution's ``config.yml`` format, with ``REGISTRY_*`` overrides.

An existing Distribution config for a filesystem registry loads unchanged:
sections and keys the registry does not implement are named in one warning, and
every problem that makes the config unusable is reported at once.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from config_reader import Section
from storage_drivers import DRIVERS

from .lifecycle.policy import Keep, RetentionRule, repository_glob, tag_glob
from .references import is_repository_name

EMBEDDED_DEFAULT: dict[str, Any] = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": "./data"}, "delete": {"enabled": True}},
    "http": {"addr": "0.0.0.0:5000"},
}
"""What ``dockyard serve`` runs with no config file: data under ./data, deletes enabled."""

CONFIG_ENV = "DOCKYARD_CONFIG"
SECRET_ENV = "DOCKYARD_SECRET"  # noqa: S105 - the variable's name, not a secret
"""What ``dockyard serve`` hands its workers when ``http.secret`` is not set: one random secret,
so every worker opens the web interface's session cookies."""
"""How ``dockyard serve`` tells its worker processes which config file to load (empty: the
embedded default)."""
ENV_PREFIX = "REGISTRY_"
STORAGE_OPTIONS = ("delete", "maintenance", "redirect", "cache", "tag")
IMPLEMENTED_SECTIONS = {
    "version", "log", "loglevel", "storage", "http", "catalog", "validation", "auth", "tokenserver",
    "proxy",
    "health",
    "notifications",
}  # fmt: skip

DEFAULT_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128")
"""A proxy on the same machine (the shipped nginx sites) sets the scheme and client address."""

LOG_LEVEL_ALIASES = {"panic": "error", "fatal": "error", "warning": "warn", "trace": "debug"}
"""The other level names Distribution's logger accepts, as the nearest level the registry has."""


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
    audit_path: str | None = None
    """A file the audit log is appended to, besides the ``registry.audit`` logger."""


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dry_run: bool = False


@dataclass(frozen=True)
class GarbageCollect:
    """``storage.maintenance.garbagecollect``: the server's scheduled online collection."""

    enabled: bool = False
    interval: float = 24 * 3600.0
    grace_period: float = 3600.0
    """Also the default of ``dockyard garbage-collect --grace-period``."""
    delete_untagged: bool = False


@dataclass(frozen=True)
class DescriptorCacheConfig:
    """``storage.cache.blobdescriptor: inmemory``: each worker keeps what it read of which
    repository holds which blob and manifest (``registry/storage/descriptors.py``)."""

    size: int = 10_000
    """``blobdescriptorsize``: entries per worker; 0 bounds them by the expiry alone."""
    expiry: float = 5.0
    """``blobdescriptorexpiry`` (Dockyard's key): seconds an entry is believed, so the longest a
    delete made through another worker or replica goes unseen."""


@dataclass(frozen=True)
class StorageConfig:
    driver: str = "filesystem"
    parameters: dict[str, Any] = field(default_factory=dict)
    delete_enabled: bool = False
    redirect: bool = True
    read_only: bool = False
    upload_purging: UploadPurging = field(default_factory=UploadPurging)
    retention: tuple[RetentionRule, ...] = ()
    """``storage.maintenance.retention``: ordered, the first rule covering a repository applies."""
    pull_records_interval: float = 60.0
    """``storage.maintenance.pullrecords.flushinterval``: how often a worker writes pull times."""
    garbage_collect: GarbageCollect = field(default_factory=GarbageCollect)
    descriptor_cache: DescriptorCacheConfig | None = None
    """None: every read asks the storage (no ``storage.cache.blobdescriptor``)."""


@dataclass(frozen=True)
class DebugConfig:
    """``http.debug``: a second listener for operators, never the public one."""

    addr: str | None = None
    prometheus: bool = False
    prometheus_path: str = "/metrics"


@dataclass(frozen=True)
class HTTPConfig:
    addr: str = ":5000"
    """HOST:PORT, or with ``net`` unix the socket's absolute path."""
    net: str = "tcp"
    """``tcp``, or ``unix``: a unix socket for a proxy on the same machine, which relays a
    download with less work than over TCP loopback (``bench/TLS.md``)."""
    host: str | None = None
    relative_urls: bool = False
    secret: str | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    """Peers whose ``X-Forwarded-Proto``, ``X-Forwarded-For`` and ``X-Request-Id`` are believed,
    as networks."""
    drain_timeout: float = 20.0
    """Seconds requests in flight get to finish after SIGTERM before their connections are
    closed (Distribution's ``draintimeout``). Bounded by default: a stalled client must not hold
    a restart, and an interrupted upload resumes; 20 s plus the few seconds of exiting fit
    Kubernetes' default 30 s grace period and the shipped units' stop timeouts."""
    debug: DebugConfig = field(default_factory=DebugConfig)
    workers: int | None = None
    """Worker processes (Dockyard's own key; ``dockyard serve --workers`` overrides it). None:
    one per usable CPU (``registry/cpus.py``), as Distribution's Go runtime uses every core."""
    accel_redirect: str | None = None
    """``http.accelredirect`` (Dockyard's own key, filesystem storage only): the path prefix of the
    nginx ``internal`` location that serves the storage's ``blobs/`` folder. Blob GETs are then
    answered with ``X-Accel-Redirect`` and nginx sends the file. None: the registry sends it."""


@dataclass(frozen=True)
class HealthConfig:
    """``health.storagedriver``: a periodic storage check that drives /readyz and /debug/health."""

    storage_check: bool = False
    interval: float = 10.0
    threshold: int = 1


@dataclass(frozen=True)
class ValidationConfig:
    urls_allow: tuple[str, ...] = ()
    urls_deny: tuple[str, ...] = ()
    index_children: str = "all"
    index_platforms: tuple[tuple[str, str], ...] = ()
    check_references: bool = True
    """False with ``validation.disabled``: manifests may reference blobs and manifests the
    registry does not hold."""


@dataclass(frozen=True)
class Upstream:
    """A registry mirrored under ``prefix`` (empty: the whole registry mirrors it)."""

    remote_url: str
    prefix: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ttl: float = 168 * 3600.0
    """Seconds cached content lives after its last use; 0 keeps it."""
    revalidate: float = 60.0
    """Seconds a manifest pulled by tag is served before the upstream is asked again."""
    cacerts: Path | None = None


EVENTS_V2 = "application/vnd.docker.distribution.events.v2+json"
EVENTS_V1 = "application/vnd.docker.distribution.events.v1+json"
"""The envelope's media type: Distribution 3 sends v2; 2.8 sent the same shape as v1."""


@dataclass(frozen=True)
class Endpoint:
    """One ``notifications.endpoints`` entry; ``max_events`` and ``max_bytes`` bound its queue."""

    name: str
    url: str
    headers: dict[str, list[str]] = field(default_factory=dict, repr=False)
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignored_media_types: frozenset[str] = frozenset()
    ignored_actions: frozenset[str] = frozenset()
    media_type: str = EVENTS_V2
    max_events: int = 10_000
    max_bytes: int = 64 << 20


@dataclass(frozen=True)
class NotificationsConfig:
    endpoints: tuple[Endpoint, ...] = ()
    """The enabled endpoints only."""
    include_references: bool = False
    directory: str | None = None
    """A local directory holding the queues; None: the registry's storage."""


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

    def _storage(self) -> StorageConfig:
        if "storage" not in self.root:
            self.problems.append("storage: required (e.g. storage.filesystem.rootdirectory)")
            return StorageConfig()
        storage = self.root.section("storage")
        supported = ", ".join(DRIVERS)
        drivers = [k for k in storage if k not in STORAGE_OPTIONS]
        if len(drivers) != 1:
            self.problems.append(
                f"storage: configure exactly one driver (found {', '.join(drivers) or 'none'}; "
                f"supported: {supported})"
            )
            return StorageConfig()
        driver = drivers[0]
        if driver not in DRIVERS:
            storage.problem(driver, f"unsupported driver (supported: {supported})")
        parameters = storage.section(driver).values
        delete = storage.section("delete")
        redirect = storage.section("redirect")
        maintenance = storage.section("maintenance")
        purging = maintenance.section("uploadpurging")
        readonly = maintenance.section("readonly")
        maintenance.warn_unknown({"uploadpurging", "readonly", "retention", "pullrecords", "garbagecollect"})
        storage.warn_unknown({driver, "delete", "redirect", "maintenance", "cache"})
        defaults = UploadPurging()
        upload_purging = UploadPurging(
            enabled=purging.flag("enabled", default=defaults.enabled),
            age=purging.duration("age", default=defaults.age),
            interval=purging.duration("interval", default=defaults.interval),
            dry_run=purging.flag("dryrun", default=defaults.dry_run),
        )
        if upload_purging.interval <= 0:
            purging.problem("interval", "must be positive")
        return StorageConfig(
            driver=driver,
            parameters=dict(parameters),
            delete_enabled=delete.flag("enabled"),
            redirect=not redirect.flag("disable"),
            read_only=readonly.flag("enabled"),
            upload_purging=upload_purging,
            retention=self._retention(maintenance),
            pull_records_interval=self._pull_records(maintenance.section("pullrecords")),
            garbage_collect=self._garbage_collect(maintenance.section("garbagecollect")),
            descriptor_cache=self._descriptor_cache(storage.section("cache")),
        )

    @staticmethod
    def _descriptor_cache(cache: Section) -> DescriptorCacheConfig | None:
        cache.warn_unknown({"blobdescriptor", "layerinfo", "blobdescriptorsize", "blobdescriptorexpiry"})
        key = "blobdescriptor" if cache.given("blobdescriptor") else "layerinfo"  # its former name
        kind = cache.string(key).strip()
        if kind.lower() != "inmemory":
            if kind:  # redis, or a name Distribution does not know either: no cache, as there
                cache.unsupported.append(f"{cache.where(key)}: {kind}")
            return None
        defaults = DescriptorCacheConfig()
        return DescriptorCacheConfig(
            size=cache.integer("blobdescriptorsize", default=defaults.size, minimum=0),
            expiry=cache.duration("blobdescriptorexpiry", default=defaults.expiry, minimum=0.001),
        )

    @staticmethod
    def _garbage_collect(section: Section) -> GarbageCollect:
        section.reject_unknown({"enabled", "interval", "graceperiod", "deleteuntagged"})  # our own key
        defaults = GarbageCollect()
        return GarbageCollect(
            enabled=section.flag("enabled", default=defaults.enabled),
            interval=section.duration("interval", default=defaults.interval, minimum=1.0),
            grace_period=section.duration("graceperiod", default=defaults.grace_period),
            delete_untagged=section.flag("deleteuntagged", default=defaults.delete_untagged),
        )

    @staticmethod
    def _pull_records(section: Section) -> float:
        section.reject_unknown({"flushinterval"})
        return section.duration("flushinterval", default=StorageConfig.pull_records_interval, minimum=0.001)

    @staticmethod
    def _retention(maintenance: Section) -> tuple[RetentionRule, ...]:
        rules = []
        for entry in maintenance.section_list("retention"):
            entry.reject_unknown({"repositories", "keep"})
            globs = entry.string_list("repositories")
            if not globs:
                entry.problem("repositories", "required: one or more repository globs such as ci/**")
            for pattern in globs:
                try:
                    repository_glob(pattern)
                except ValueError as exc:
                    entry.problem("repositories", str(exc))
            keep = entry.section("keep")
            keep.reject_unknown({"newest", "pushedwithin", "pulledwithin", "tags"})
            clauses = [key for key in ("newest", "pushedwithin", "pulledwithin", "tags") if keep.given(key)]
            if not clauses:
                entry.problem("keep", "required: at least one of newest, pushedwithin, pulledwithin, tags")
            patterns = keep.string_list("tags")
            for pattern in patterns:
                try:
                    tag_glob(pattern)
                except ValueError as exc:
                    keep.problem("tags", str(exc))
            newest = keep.integer("newest", default=0, minimum=0) if keep.given("newest") else None
            windows = [
                keep.duration(key, default=0.0) if keep.given(key) else None
                for key in ("pushedwithin", "pulledwithin")
            ]
            rules.append(RetentionRule(tuple(globs), Keep(newest, windows[0], windows[1], tuple(patterns))))
        return tuple(rules)

    def _http(self) -> HTTPConfig:
        http = self.root.section("http")
        http.warn_unknown({
            "addr", "host", "relativeurls", "secret", "headers", "net", "trustedproxies", "draintimeout",
            "workers", "debug", "accelredirect",
        })  # fmt: skip
        net = http.choice("net", ("tcp", "unix"), default="tcp")
        host = http.url("host")
        return HTTPConfig(
            addr=self._socket_path(http) if net == "unix" else http.address("addr", default=":5000"),
            net=net,
            host=host.rstrip("/") if host else None,
            relative_urls=http.flag("relativeurls"),
            secret=http.string("secret") or None,
            headers=http.string_lists("headers"),
            trusted_proxies=self._trusted_proxies(http),
            drain_timeout=http.duration("draintimeout", default=HTTPConfig.drain_timeout),
            debug=self._debug(http.section("debug"), public_addr=http.string("addr")),
            workers=http.integer("workers", default=0, minimum=1) or None,
            accel_redirect=self._accel_redirect(http),
        )

    @staticmethod
    def _socket_path(http: Section) -> str:
        path = http.string("addr")
        if not path.startswith("/"):
            http.problem(
                "addr", "with net: unix, the socket's absolute path, such as /run/dockyard/registry.sock"
            )
        return path

    @staticmethod
    def _accel_redirect(http: Section) -> str | None:
        prefix = http.string("accelredirect")
        # Appended to it is a blob's path under blobs/, which nginx resolves against its alias.
        if prefix and not re.fullmatch(r"/(?:[\w~-][\w.~-]*/)+", prefix, re.ASCII):
            http.problem(
                "accelredirect", "must be a path such as /_dockyard/blobs/ (starting and ending with /)"
            )
            return None
        return prefix or None

    @staticmethod
    def _debug(debug: Section, public_addr: str) -> DebugConfig:
        debug.warn_unknown({"addr", "prometheus"})
        prometheus = debug.section("prometheus")
        prometheus.warn_unknown({"enabled", "path"})
        path = prometheus.string("path", default="/metrics")
        if not path.startswith("/"):
            prometheus.problem("path", "must start with /")
        enabled = prometheus.flag("enabled")
        addr = debug.address("addr", default="") if debug.given("addr") else None
        # Requests are told apart by the port they arrived on: it must be its own, and fixed.
        if addr and addr.rpartition(":")[2] in {"0", public_addr.rpartition(":")[2]}:
            debug.problem("addr", "needs a port of its own (not 0, not the one http.addr listens on)")
        if enabled and addr is None:
            prometheus.problem(
                "enabled", "needs http.debug.addr: metrics are never served on the public port"
            )
        return DebugConfig(addr=addr, prometheus=enabled, prometheus_path=path)

    @staticmethod
    def _trusted_proxies(http: Section) -> tuple[str, ...]:
        if not http.given("trustedproxies"):
            return DEFAULT_TRUSTED_PROXIES
        networks = []
        # One comma-separated string is what an environment variable can give.
        for entry in (part for item in http.string_list("trustedproxies") for part in item.split(",")):
            if not entry.strip():
                continue
            try:
                # Not strict: 10.1.2.3/8 means 10.0.0.0/8, as the operator surely meant.
                networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                http.problem("trustedproxies", f"{entry!r} is not an address or a network such as 10.0.0.0/8")
        return tuple(networks)

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

    def _health(self) -> HealthConfig:
        health = self.root.section("health")
        health.warn_unknown({"storagedriver"})
        check = health.section("storagedriver")
        check.warn_unknown({"enabled", "interval", "threshold"})
        defaults = HealthConfig()
        return HealthConfig(
            storage_check=check.flag("enabled"),
            interval=check.duration("interval", default=defaults.interval, minimum=0.001),
            threshold=check.integer("threshold", default=defaults.threshold, minimum=1),
        )

    def _notifications(self) -> NotificationsConfig:
        """Distribution's section unchanged, plus the registry's queue keys: ``queue.directory``
        and the default bounds ``queue.maxevents`` / ``queue.maxbytes``, which an endpoint's own
        ``maxevents`` / ``maxbytes`` override, and an endpoint's ``mediatype`` (v1 for receivers
        written for Distribution 2.8)."""
        section = self.root.section("notifications")
        section.warn_unknown({"endpoints", "events", "queue"})
        events = section.section("events")
        events.warn_unknown({"includereferences"})
        queue = section.section("queue")
        queue.reject_unknown({"directory", "maxevents", "maxbytes"})
        directory = queue.string("directory") or None
        if directory is not None and not Path(directory).is_dir():
            queue.problem("directory", f"{directory}: no such directory")
        defaults = Endpoint("", "")
        max_events = queue.integer("maxevents", default=defaults.max_events, minimum=1)
        max_bytes = queue.integer("maxbytes", default=defaults.max_bytes, minimum=1)
        endpoints: list[Endpoint] = []
        for entry in section.section_list("endpoints"):
            entry.warn_unknown(ENDPOINT_KEYS)
            name = entry.string("name", required=True)
            if not entry.given("url"):
                entry.problem("url", "required")
            url = entry.url("url")
            ignore = entry.section("ignore")
            ignore.warn_unknown({"mediatypes", "actions"})
            actions = ignore.string_list("actions")
            for action in actions:
                if action not in EVENT_ACTIONS:
                    ignore.problem("actions", f"{action!r} is not one of {', '.join(EVENT_ACTIONS)}")
            if any(e.name == name for e in endpoints):
                entry.problem("name", f"{name!r} names another endpoint too")
            endpoint = Endpoint(
                name=name,
                url=url or "",
                headers=entry.string_lists("headers"),
                timeout=entry.duration("timeout", default=defaults.timeout, minimum=0.001),
                threshold=entry.integer("threshold", default=defaults.threshold, minimum=0),
                backoff=entry.duration("backoff", default=defaults.backoff),
                ignored_media_types=frozenset(
                    entry.string_list("ignoredmediatypes") + ignore.string_list("mediatypes")
                ),
                ignored_actions=frozenset(actions),
                media_type=entry.choice("mediatype", (EVENTS_V2, EVENTS_V1), default=EVENTS_V2),
                max_events=entry.integer("maxevents", default=max_events, minimum=1),
                max_bytes=entry.integer("maxbytes", default=max_bytes, minimum=1),
            )
            if name and url and not entry.flag("disabled"):
                endpoints.append(endpoint)
        return NotificationsConfig(
            endpoints=tuple(endpoints),
            include_references=events.flag("includereferences"),
            directory=directory,
        )

    def _catalog(self) -> int:
        catalog = self.root.section("catalog")
        catalog.warn_unknown({"maxentries"})
        return catalog.integer("maxentries", default=1000, minimum=1)

    def _validation(self) -> ValidationConfig:
        validation = self.root.section("validation")
        validation.warn_unknown({"disabled", "enabled", "manifests"})
        disabled = validation.flag("disabled")
        if "enabled" in validation:
            disabled = not validation.flag("enabled", default=True)
        manifests = validation.section("manifests")
        urls = manifests.section("urls")
        indexes = manifests.section("indexes")
        if disabled:
            return ValidationConfig(check_references=False)
        allow = self._patterns(urls, "allow")
        deny = self._patterns(urls, "deny")
        policy = indexes.choice("platforms", ("all", "none", "list"), default="all")
        platforms = []
        for entry in indexes.section_list("platformlist"):
            platform = (entry.string("os", required=True), entry.string("architecture", required=True))
            if all(platform):
                platforms.append(platform)
        return ValidationConfig(allow, deny, policy, tuple(platforms))

    @staticmethod
    def _patterns(urls: Section, key: str) -> tuple[str, ...]:
        patterns = urls.string_list(key)
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                urls.problem(key, f"{pattern!r}: {exc}")
        return tuple(patterns)

    def _proxy(self) -> tuple[Upstream, ...]:
        """Distribution's form (``remoteurl`` at the top: the whole registry mirrors one upstream)
        or the registry's own (``upstreams``: each mirrored under a name prefix)."""
        proxy = self.root.section("proxy")
        if "remoteurl" in proxy and "upstreams" in proxy:
            proxy.problem("upstreams", "give either remoteurl (one upstream) or upstreams, not both")
            return ()
        if "remoteurl" in proxy:
            proxy.warn_unknown(UPSTREAM_KEYS - {"prefix"})
            upstream = self._upstream(proxy, prefix="")
            return (upstream,) if upstream else ()
        proxy.warn_unknown({"upstreams"})
        upstreams: list[Upstream] = []
        for entry in proxy.section_list("upstreams"):
            entry.reject_unknown(UPSTREAM_KEYS)
            prefix = entry.string("prefix", required=True)
            if prefix and not is_repository_name(prefix):
                entry.problem("prefix", f"{prefix!r} is not a repository name such as dockerhub")
                continue
            clash = next((u.prefix for u in upstreams if _nested(u.prefix, prefix)), None)
            if clash is not None:
                entry.problem("prefix", f"{prefix!r} overlaps the prefix {clash!r}")
                continue
            upstream = self._upstream(entry, prefix)
            if upstream and prefix:
                upstreams.append(upstream)
        return tuple(upstreams)

    @staticmethod
    def _upstream(section: Section, prefix: str) -> Upstream | None:
        if not section.given("remoteurl"):
            section.problem("remoteurl", "required")
            return None
        url = section.url("remoteurl")
        if not url:
            return None
        if "@" in urlsplit(url).netloc:
            section.problem("remoteurl", "must not hold credentials (use username and password)")
            return None
        username = section.string("username")
        password = section.string("password")
        if bool(username) != bool(password):
            section.problem("password" if username else "username", "username and password go together")
        defaults = Upstream(url)
        return Upstream(
            remote_url=url.rstrip("/"),
            prefix=prefix,
            username=username,
            password=password,
            ttl=section.duration("ttl", default=defaults.ttl),
            revalidate=section.duration("revalidate", default=defaults.revalidate),
            cacerts=section.existing_file("cacerts"),
        )


ENDPOINT_KEYS = frozenset({
    "name", "disabled", "url", "headers", "timeout", "threshold", "backoff", "ignoredmediatypes",
    "ignore", "mediatype", "maxevents", "maxbytes",
})  # fmt: skip
EVENT_ACTIONS = ("push", "pull", "delete", "mount")
UPSTREAM_KEYS = frozenset({"prefix", "remoteurl", "username", "password", "ttl", "revalidate", "cacerts"})


def _nested(a: str, b: str) -> bool:
    """Whether one prefix names a repository under (or equal to) the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
