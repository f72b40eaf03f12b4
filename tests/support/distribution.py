"""CNCF Distribution 2.8 (Debian's ``docker-registry``) as a reference registry on 127.0.0.1.

Used to prove the storage layout is shared in both directions and as a baseline server for
benchmarks. It looks like ``RunningRegistry`` where it matters: ``host``, ``url``, ``root``,
``stop()``, ``restart()``, ``log()``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .processes import ServerProcess, free_port
from .registry import merge

BINARY = "docker-registry"


def distribution_config(root: Path, host: str) -> dict[str, Any]:
    """Filesystem storage at ``root``, deletes on, listening on ``host`` only."""
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            # No upload purging: it would race with layouts shared between test registries.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": host, "secret": "distribution-tests"},
    }


class DistributionRegistry:
    """``docker-registry serve`` on a free port, storage under ``root``."""

    def __init__(self, workdir: Path, root: Path, config: dict[str, Any] | None = None) -> None:
        if shutil.which(BINARY) is None:
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        self.workdir = workdir
        self._root = root
        self.extra_config = config or {}
        self.port = free_port()
        self.process: ServerProcess | None = None
        self.starts = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def root(self) -> Path:
        return self._root

    def start(self) -> DistributionRegistry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        config = merge(distribution_config(self._root, self.host), self.extra_config)
        config_path = self.workdir / f"config-{self.starts}.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.process = ServerProcess([BINARY, "serve", str(config_path)], self.workdir / "distribution.log")
        self.process.wait_http(f"{self.url}/v2/")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self, root: Path | None = None) -> DistributionRegistry:
        """Stop, then serve ``root`` (default: the same one) on the same port."""
        self.stop()
        if root is not None:
            self._root = root
        return self.start()

    def log(self) -> str:
        log_path = self.workdir / "distribution.log"
        return log_path.read_text(errors="replace") if log_path.exists() else ""


StartDistribution = Callable[[Path], DistributionRegistry]
