"""The configuration the observability parts read: http.debug, health.storagedriver, log.audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.config import ConfigError, DebugConfig, HealthConfig, load_config
from tests.support.launcher import write_config


def load(tmp_path: Path, **sections: Any) -> Any:
    config = {"version": "0.1", "storage": {"filesystem": {"rootdirectory": str(tmp_path)}}, **sections}
    return load_config(write_config(tmp_path / "config.yml", config), {})


def problems(tmp_path: Path, **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, **sections)
    return raised.value.problems


def test_defaults_serve_no_debug_listener_and_check_nothing(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.http.debug == DebugConfig(addr=None, prometheus=False, prometheus_path="/metrics")
    assert config.health == HealthConfig(storage_check=False, interval=10.0, threshold=1)
    assert config.log.audit_path is None


def test_distribution_sections_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        http={
            "addr": ":5000",
            "debug": {"addr": "127.0.0.1:5001", "prometheus": {"enabled": "true", "path": "/m"}},
        },
        health={"storagedriver": {"enabled": True, "interval": "30s", "threshold": 3}},
        log={"audit": {"path": str(tmp_path / "audit.log")}},
    )
    assert config.http.debug == DebugConfig("127.0.0.1:5001", True, "/m")
    assert config.health == HealthConfig(True, 30.0, 3)
    assert config.log.audit_path == str(tmp_path / "audit.log")
    assert config.warnings == ()


def test_every_problem_is_named(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        http={"addr": ":5000", "debug": {"addr": ":5000", "prometheus": {"path": "metrics"}}},
        health={"storagedriver": {"enabled": "sometimes", "threshold": 0}},
        log={"audit": {"path": str(tmp_path / "missing" / "audit.log"), "logger": "x"}},
    )
    assert found == [
        "http.debug.prometheus.path: must start with /",
        "http.debug.addr: needs a port of its own (not 0, not the one http.addr listens on)",
        "log.audit.logger: unknown key (known: path)",
        f"log.audit.path: {tmp_path / 'missing'}: no such directory",
        "health.storagedriver.enabled: must be true or false",
        "health.storagedriver.threshold: must be an integer of at least 1",
    ]


def test_metrics_need_the_debug_listener(tmp_path: Path) -> None:
    assert problems(tmp_path, http={"debug": {"prometheus": {"enabled": True}}}) == [
        "http.debug.prometheus.enabled: needs http.debug.addr: metrics are never served on the public port"
    ]
