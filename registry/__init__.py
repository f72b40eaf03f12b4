"""Dockyard: a container image registry (OCI Distribution v1.1, Docker Registry HTTP API v2)."""

from .app import create_app
from .config import Config, load_config

__all__ = ["Config", "create_app", "load_config"]
