"""Fixtures for integrity under failure: registries with several workers, and clients for them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.registry import RunningRegistry, StartRegistry

WORKERS = 4
"""More workers than cores: requests on fresh connections land on different processes."""


@pytest.fixture(scope="session")
def multi_worker_registry(start_registry: StartRegistry) -> RunningRegistry:
    """A registry with four workers that no test restarts or kills."""
    return start_registry(workers=WORKERS)


@pytest.fixture
def client(multi_worker_registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as http:
        yield http
