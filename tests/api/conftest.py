"""Fixtures for the API tests: a client for the shared registry, unique repository names, and
registries started with one configuration variant each (shared by the module that needs it)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.registry import RunningRegistry, StartRegistry

from .client import RegistryClient

NewRepo = Callable[[], str]


def unique_name(label: str) -> str:
    """A repository name no other test uses, readable in logs."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40].strip("-") or "repo"
    return f"api/{slug}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def client(registry_server: RunningRegistry) -> Iterator[RegistryClient]:
    """A client for the shared registry (two workers, deletes enabled, ``--registry-storage``)."""
    http = RegistryClient(registry_server.url)
    yield http
    http.close()


@pytest.fixture
def new_repo(request: pytest.FixtureRequest) -> NewRepo:
    """Makes fresh repository names for the current test."""
    return lambda: unique_name(request.node.originalname)


@pytest.fixture
def repo(new_repo: NewRepo) -> str:
    return new_repo()


@contextlib.contextmanager
def variant(
    start_registry: StartRegistry, config: dict[str, Any]
) -> Iterator[tuple[RunningRegistry, RegistryClient]]:
    """A registry started with ``config`` merged into the default, stopped on exit."""
    registry = start_registry(config)
    http = RegistryClient(registry.url)
    try:
        yield registry, http
    finally:
        http.close()
        registry.stop()
