"""The registry under test, as a real server process (uvicorn, several workers)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .processes import ServerProcess, free_port

if TYPE_CHECKING:  # imported by pytest as a plugin, which rewrites its asserts first
    from .ceph import CephRGW

PROJECT = Path(__file__).resolve().parents[2]
DRIVERS = ("filesystem", "s3", "inmemory")
"""The ``storage`` keys that name a driver (the registry accepts exactly one)."""


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
    env: dict[str, str] | None = None
    """Environment variables the server runs with, besides the tests' own."""
    wrapper: list[str] = field(default_factory=list)
    """A command the server runs under (its arguments come before the server's), e.g. ``held``."""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> dict[str, Any]:
        """The driver section, e.g. ``{"s3": {...}}``: in another registry's ``storage`` it
        serves the same content."""
        return driver_section(self.config)

    @property
    def root(self) -> Path:
        """The filesystem storage root; only a filesystem-backed registry has one."""
        filesystem = self.config["storage"].get("filesystem")
        if filesystem is None:
            raise TypeError(f"the registry at {self.url} stores in {sorted(self.storage)}, not a folder")
        return Path(filesystem["rootdirectory"])

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def start(self) -> RunningRegistry:
        self.config["http"] = {**self.config.get("http", {}), "addr": self.host}
        self.config_path.write_text(yaml.safe_dump(self.config))
        command = [*self.wrapper, sys.executable, "-m", "registry", "serve", str(self.config_path)]
        command += ["--workers", str(self.workers)]
        self.process = ServerProcess(command, self.workdir / "registry.log", env=self.env, cwd=self.workdir)
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


def driver_section(config: dict[str, Any]) -> dict[str, Any]:
    """The ``storage`` entries of ``config`` that name a driver."""
    storage = config.get("storage", {})
    return {name: storage[name] for name in DRIVERS if name in storage}


def filesystem_storage(root: Path) -> dict[str, Any]:
    return {"filesystem": {"rootdirectory": str(root)}}


def s3_storage(rgw: CephRGW, redirect: bool = True, **parameters: Any) -> dict[str, Any]:
    """A ``storage`` section on a fresh bucket of ``rgw``; ``redirect`` sends blob GETs to
    presigned URLs (the default), else the registry streams them."""
    return {
        "s3": rgw.driver_parameters(rgw.create_bucket(), **parameters),
        "redirect": {"disable": not redirect},
    }


def default_config(root: Path | None = None, storage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tests' base config: ``storage`` (a driver section), else filesystem storage at ``root``."""
    if storage is None:
        if root is None:
            raise ValueError("default_config needs a filesystem root or a storage driver section")
        storage = filesystem_storage(root)
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {**storage, "delete": {"enabled": True}},
    }


def configure(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into ``base``; a driver named in ``extra`` replaces the one in ``base``."""
    if driver_section(extra):
        base = {**base, "storage": {k: v for k, v in base["storage"].items() if k not in DRIVERS}}
    return merge(base, extra)
