"""Registries with the debug listener on, scraping it, and CNCF Distribution 3.1 beside them."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from registry.observability.tally import FLUSH_INTERVAL
from tests.support.processes import ServerProcess, free_port
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.waiting import TIMEOUT, eventually

DISTRIBUTION3_ENV = "DOCKYARD_DISTRIBUTION3"
DISTRIBUTION3_DEFAULT = Path("/tmp/anchors/registry-3.1.1")
"""Where ``unpack-distribution.sh /tmp/anchors`` puts CNCF Distribution 3.1.1's ``registry``."""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Sample name and sorted labels -> value."""


def debug_section(port: int) -> dict[str, Any]:
    return {"debug": {"addr": f"127.0.0.1:{port}", "prometheus": {"enabled": True, "path": "/metrics"}}}


SETTLED_FOR = 6 * FLUSH_INTERVAL
"""How long the figures must stay the same for ``Scraper.settled`` to take them as complete."""


class Scraper:
    """Scrapes of the debug listener. Each worker writes what it counted every FLUSH_INTERVAL
    (the one answering, before it answers), so a single scrape may lack another worker's last
    fraction of a second, or more on a loaded machine: a test waits for what it expects
    (``until``), or for the figures to stop changing (``settled``), never a fixed time."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def families(self) -> dict[str, Any]:
        """One scrape, now."""
        response = httpx.get(self.url, timeout=10)
        assert response.status_code == 200, response.text
        return {family.name: family for family in text_string_to_metric_families(response.text)}

    def samples(self) -> Samples:
        """One scrape, now."""
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in self.families().values()
            for sample in family.samples
        }

    def until(self, check: Callable[[Samples], object]) -> Samples:
        """The first scrape ``check`` (assertions on it) passes; its last failure if none does
        within the timeout."""

        def scrape_and_check() -> Samples:
            samples = self.samples()
            check(samples)
            return samples

        return eventually(scrape_and_check)

    def settled(self, *names: str) -> Samples:
        """A scrape once the samples called ``names`` (all, without names) stayed the same for
        SETTLED_FOR: a baseline, or a figure that must not move, then includes what every worker
        counted before. Name the figures a test looks at where the registry works on its own
        (a purge every second changes the storage figures)."""

        def watched(samples: Samples) -> Samples:
            return {key: v for key, v in samples.items() if not names or key[0] in names}

        deadline = time.monotonic() + TIMEOUT
        last, since = self.samples(), time.monotonic()
        while time.monotonic() - since < SETTLED_FOR:
            assert time.monotonic() < deadline, f"the figures kept changing: {watched(last)}"
            time.sleep(FLUSH_INTERVAL / 2)
            samples = self.samples()
            if watched(samples) != watched(last):
                since = time.monotonic()
            last = samples
        return last


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
