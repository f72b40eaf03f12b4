from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ceph import ceph_rgw, s3_bucket  # noqa: F401 - fixtures for S3 tests
from tests.support.registry import RunningRegistry, StartRegistry, default_config, merge


@pytest.fixture(scope="session")
def start_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartRegistry]:
    """Start ``dockyard serve`` with the default test config merged with ``config``.

    ``root`` reuses an existing storage root (e.g. one written by another registry).
    Every registry started is stopped at the end of the session.
    """
    started: list[RunningRegistry] = []

    def start(
        config: dict[str, Any] | None = None, workers: int = 2, root: Path | None = None
    ) -> RunningRegistry:
        workdir = tmp_path_factory.mktemp("registry")
        base = default_config(root or workdir / "data")
        registry = RunningRegistry(workdir, merge(base, config or {}), workers)
        started.append(registry)
        return registry.start()

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture(scope="session")
def registry_server(start_registry: StartRegistry) -> RunningRegistry:
    """One shared registry (filesystem storage, two workers, deletes enabled)."""
    return start_registry()
