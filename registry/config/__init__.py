"""Configuration in CNCF Distribution's ``config.yml`` format, with ``REGISTRY_*`` overrides.

An existing Distribution config for a filesystem registry loads unchanged:
sections and keys the registry does not implement are named in one warning, and
every problem that makes the config unusable is reported at once.

``load.py`` reads the file and the overrides, ``parser.py`` makes the whole ``Config``, and each
section has a module of its own: its settings and the part of the parser that reads them.
"""

from __future__ import annotations

from .health import HealthConfig
from .http import DEFAULT_TRUSTED_PROXIES, DebugConfig, HTTPConfig
from .load import CONFIG_ENV, EMBEDDED_DEFAULT, ENV_PREFIX, SECRET_ENV, ConfigError, load_config
from .log import LOG_LEVEL_ALIASES, LogConfig
from .notifications import ENDPOINT_KEYS, EVENT_ACTIONS, EVENTS_V1, EVENTS_V2, Endpoint, NotificationsConfig
from .parser import IMPLEMENTED_SECTIONS, Config
from .proxy import UPSTREAM_KEYS, Upstream
from .storage import STORAGE_OPTIONS, DescriptorCacheConfig, GarbageCollect, StorageConfig, UploadPurging
from .validation import ValidationConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_TRUSTED_PROXIES",
    "EMBEDDED_DEFAULT",
    "ENDPOINT_KEYS",
    "ENV_PREFIX",
    "EVENTS_V1",
    "EVENTS_V2",
    "EVENT_ACTIONS",
    "IMPLEMENTED_SECTIONS",
    "LOG_LEVEL_ALIASES",
    "SECRET_ENV",
    "STORAGE_OPTIONS",
    "UPSTREAM_KEYS",
    "Config",
    "ConfigError",
    "DebugConfig",
    "DescriptorCacheConfig",
    "Endpoint",
    "GarbageCollect",
    "HTTPConfig",
    "HealthConfig",
    "LogConfig",
    "NotificationsConfig",
    "StorageConfig",
    "UploadPurging",
    "Upstream",
    "ValidationConfig",
    "load_config",
]
