"""Fixtures for layout interoperability: CNCF Distribution and Dockyard serving the same root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.distribution import DistributionRegistry, StartDistribution


@pytest.fixture(scope="session")
def start_distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartDistribution]:
    """Start ``docker-registry`` on a storage root; every one started is stopped at session end."""
    started: list[DistributionRegistry] = []

    def start(root: Path) -> DistributionRegistry:
        registry = DistributionRegistry(tmp_path_factory.mktemp("distribution"), root)
        started.append(registry)
        return registry.start()

    yield start
    for registry in started:
        registry.stop()
