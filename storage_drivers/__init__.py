"""Storage drivers: bytes at paths, behind one small async contract (``base.StorageDriver``).

Drivers are found by their configuration name and imported only when used, so
an optional dependency of one driver never burdens the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from .base import (
    FileInfo,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
    StorageFull,
    StorageReadOnly,
    StorageUnavailable,
)
from .config import DriverConfigError, Parameters

__all__ = [
    "DRIVERS",
    "DriverConfigError",
    "FileInfo",
    "FileWriter",
    "InvalidOffset",
    "InvalidPath",
    "Parameters",
    "PathNotFound",
    "StorageDriver",
    "StorageError",
    "StorageFull",
    "StorageReadOnly",
    "StorageUnavailable",
    "check_driver",
    "create_driver",
]

DRIVERS: dict[str, str] = {
    "filesystem": "storage_drivers.filesystem:FilesystemDriver",
    "inmemory": "storage_drivers.inmemory:InMemoryDriver",
    "s3": "storage_drivers.s3:S3Driver",
}
"""Configuration name -> "module:class" of every driver."""
CHECKS: dict[str, str] = {"s3": "storage_drivers.s3.settings:check_parameters"}
"""Configuration name -> "module:function" that checks a driver's parameters without building
it, for drivers whose building loads much (a process that only checks stays small)."""


class _DriverClass(Protocol):
    def __call__(self, *args: object) -> StorageDriver: ...

    def from_parameters(self, parameters: Parameters) -> StorageDriver: ...


def create_driver(name: str, parameters: Parameters) -> StorageDriver:
    """Build the driver configured as ``storage.<name>``; DriverConfigError lists what is wrong."""
    try:
        target = DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise DriverConfigError([f"unknown storage driver {name!r} (known: {known})"]) from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverConfigError(
            [f"storage driver {name!r} needs a package that is not installed: {exc.name}"]
        ) from exc
    driver_class: _DriverClass = getattr(module, class_name)
    return driver_class.from_parameters(parameters)


def check_driver(name: str, parameters: Parameters) -> None:
    """Raise DriverConfigError listing what is wrong with ``storage.<name>``, as create_driver
    would, without building the driver where it has a lighter check."""
    target = CHECKS.get(name)
    if target is None:
        create_driver(name, parameters)
        return
    module_name, function_name = target.split(":")
    check: Callable[[Parameters], None] = getattr(importlib.import_module(module_name), function_name)
    check(parameters)
