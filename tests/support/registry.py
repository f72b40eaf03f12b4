"""The registry under test, as a real server process (uvicorn, several workers)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .processes import ServerProcess, free_port

PROJECT = Path(__file__).resolve().parents[2]


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class RunningRegistry:
    """A started ``dockyard serve``; ``host`` is what clients put in image names."""

    workdir: Path
    config: dict[str, Any]
    workers: int
    port: int = field(default_factory=free_port)
    process: ServerProcess | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def root(self) -> Path:
        """The filesystem storage root (for filesystem-backed registries)."""
        return Path(self.config["storage"]["filesystem"]["rootdirectory"])

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def start(self) -> RunningRegistry:
        self.config["http"] = {**self.config.get("http", {}), "addr": self.host}
        self.config_path.write_text(yaml.safe_dump(self.config))
        command = [sys.executable, "-m", "registry", "serve", str(self.config_path)]
        command += ["--workers", str(self.workers)]
        self.process = ServerProcess(command, self.workdir / "registry.log", cwd=self.workdir)
        self.process.wait_http(f"{self.url}/v2/")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill9(self) -> None:
        if self.process is not None:
            self.process.kill9()
            self.process = None

    def restart(self) -> RunningRegistry:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.process.log() if self.process else (self.workdir / "registry.log").read_text()


StartRegistry = Callable[..., RunningRegistry]


def default_config(root: Path) -> dict[str, Any]:
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
    }
