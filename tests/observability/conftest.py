"""Registries with the debug listener on, scraping it, and CNCF Distribution 3.1 beside them."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from registry.observability.tally import FLUSH_INTERVAL
from tests.support.processes import ServerProcess, free_port
from tests.support.registry import RunningRegistry, StartRegistry

DISTRIBUTION3_ENV = "DOCKYARD_DISTRIBUTION3"
DISTRIBUTION3_DEFAULT = Path("/tmp/anchors/registry-3.1.1")
"""Where ``unpack-distribution.sh /tmp/anchors`` puts CNCF Distribution 3.1.1's ``registry``."""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Sample name and sorted labels -> value."""


def debug_section(port: int) -> dict[str, Any]:
    return {"debug": {"addr": f"127.0.0.1:{port}", "prometheus": {"enabled": True, "path": "/metrics"}}}


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def families(self) -> dict[str, Any]:
        """After every worker has flushed what it counted (they do every FLUSH_INTERVAL)."""
        time.sleep(2 * FLUSH_INTERVAL)
        response = httpx.get(self.url, timeout=10)
        assert response.status_code == 200, response.text
        return {family.name: family for family in text_string_to_metric_families(response.text)}

    def samples(self) -> Samples:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in self.families().values()
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def metrics_registry(start_registry: StartRegistry) -> tuple[RunningRegistry, Scraper]:
    """Three workers, metrics on the debug listener."""
    port = free_port()
    registry = start_registry({"http": debug_section(port)}, workers=3)
    return registry, Scraper(port)


@pytest.fixture(scope="session")
def distribution3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Scraper]]:
    """CNCF Distribution 3.1 serving a fresh folder, with the same ``http.debug`` section."""
    binary = Path(os.environ.get(DISTRIBUTION3_ENV) or DISTRIBUTION3_DEFAULT)
    if not binary.is_file() or shutil.which(str(binary)) is None:
        pytest.skip(
            f"CNCF Distribution 3.1 not found at {binary}: run "
            f"../shared/anchors/unpack-distribution.sh /tmp/anchors, or set {DISTRIBUTION3_ENV}"
        )
    workdir = tmp_path_factory.mktemp("distribution3")
    port, debug_port = free_port(), free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", **debug_section(debug_port)},
    }
    (workdir / "config.yml").write_text(yaml.safe_dump(config))
    process = ServerProcess([str(binary), "serve", str(workdir / "config.yml")], workdir / "distribution.log")
    try:
        process.wait_http(f"http://127.0.0.1:{port}/v2/")
        yield f"http://127.0.0.1:{port}", Scraper(debug_port)
    finally:
        process.stop()
