"""``health``: the periodic storage check."""

from __future__ import annotations

from dataclasses import dataclass

from .base import SectionParser


@dataclass(frozen=True)
class HealthConfig:
    """``health.storagedriver``: a periodic storage check that drives /readyz and /debug/health."""

    storage_check: bool = False
    interval: float = 10.0
    threshold: int = 1


class HealthParser(SectionParser):
    """Reads ``health``."""

    def _health(self) -> HealthConfig:
        health = self.root.section("health")
        health.warn_unknown({"storagedriver"})
        check = health.section("storagedriver")
        check.warn_unknown({"enabled", "interval", "threshold"})
        defaults = HealthConfig()
        return HealthConfig(
            storage_check=check.flag("enabled"),
            interval=check.duration("interval", default=defaults.interval, minimum=0.001),
            threshold=check.integer("threshold", default=defaults.threshold, minimum=1),
        )
