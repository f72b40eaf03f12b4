"""``http``: the listener, the host clients are told, trusted proxies and the debug listener."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from config_reader import Section

from .base import SectionParser

DEFAULT_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128")
"""A proxy on the same machine (the shipped nginx sites) sets the scheme and client address."""


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
    loop_affinity: bool = True
    """``http.loopaffinity`` (Dockyard's own key): with one worker per CPU the registry may run on,
    each worker's short blocking calls run on the CPU its event loop is on
    (``offload.follow_callers``); with other counts, or false, the kernel places every thread."""
    accel_redirect: str | None = None
    """``http.accelredirect`` (Dockyard's own key, filesystem storage only): the path prefix of the
    nginx ``internal`` location that serves the storage's ``blobs/`` folder. Blob GETs are then
    answered with ``X-Accel-Redirect`` and nginx sends the file. None: the registry sends it."""


class HTTPParser(SectionParser):
    """Reads ``http``."""

    def _http(self) -> HTTPConfig:
        http = self.root.section("http")
        http.warn_unknown({
            "addr", "host", "relativeurls", "secret", "headers", "net", "trustedproxies", "draintimeout",
            "workers", "loopaffinity", "debug", "accelredirect",
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
            loop_affinity=http.flag("loopaffinity", default=HTTPConfig.loop_affinity),
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
        path = prometheus.url_path("path", default="/metrics")
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
