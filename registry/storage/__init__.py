"""The registry's storage services: what blobs, uploads, manifests, tags, the catalog and
referrers mean, on top of any storage driver. Nothing here sees an HTTP request."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import paths

if TYPE_CHECKING:
    from .descriptors import DescriptorCache
    from .manifests import ManifestPolicy, StoredManifest
    from .services import BlobService, ManifestService
    from .store import STAGED_WRITE_AGE, Storage, Wrappers

__all__ = [
    "STAGED_WRITE_AGE",
    "BlobService",
    "DescriptorCache",
    "ManifestPolicy",
    "ManifestService",
    "Storage",
    "StoredManifest",
    "Wrappers",
    "paths",
]

_EXPORTS = {
    "BlobService": "services",
    "DescriptorCache": "descriptors",
    "ManifestPolicy": "manifests",
    "ManifestService": "services",
    "STAGED_WRITE_AGE": "store",
    "Storage": "store",
    "StoredManifest": "manifests",
    "Wrappers": "store",
}
"""Imported on first use: the maintenance commands import this package for ``paths`` and a few
modules, and the services' modules would be a sixth of their start-up."""


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
