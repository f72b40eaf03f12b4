"""Reading a configuration section, collecting every problem instead of stopping at the first.

Start-up must list every problem of an invalid configuration at once, so readers return a
placeholder and record the problem; the caller raises ``AuthConfigError(problems)`` at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class AuthConfigError(ValueError):
    """The auth configuration is unusable; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_duration(value: object) -> float | None:
    """Seconds from an int/float (seconds) or a Go duration string such as ``5m`` or ``1h30m``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position > 0 else None


class Section:
    """A mapping under ``name`` (e.g. ``auth.token``) read with typed accessors."""

    def __init__(self, name: str, values: object, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            problems.append(f"{name}: must be a mapping")
            values = {}
        self.values: Mapping[str, Any] = values

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.name}.{key}: {message}")

    def reject_unknown(self, known: Iterable[str]) -> None:
        allowed = set(known)
        for key in self.values:
            if key not in allowed:
                self.problems.append(f"{self.name}.{key}: unknown key (known: {', '.join(sorted(allowed))})")

    def string(self, key: str, *, required: bool = False, default: str = "") -> str:
        value = self.values.get(key)
        if value is None or value == "":
            if required:
                self.problem(key, "required")
            return default
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        return value

    def boolean(self, key: str, *, default: bool = False) -> bool:
        value = self.values.get(key, default)
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"  # YAML read as text, or an environment override
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def duration(self, key: str, *, default: float, minimum: float) -> float:
        if key not in self.values:
            return default
        seconds = parse_duration(self.values[key])
        if seconds is None:
            self.problem(key, "must be seconds or a duration such as 300s, 5m, 720h")
            return default
        if seconds < minimum:
            self.problem(key, f"must be at least {minimum:g} seconds")
            return default
        return seconds

    def string_list(self, key: str) -> list[str]:
        value = self.values.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, "must be a list of strings")
            return []
        return list(value)

    def existing_file(self, key: str, *, required: bool = False) -> Path | None:
        """A path that must name a readable file now."""
        text = self.string(key, required=required)
        if not text:
            return None
        path = Path(text)
        if not path.is_file():
            self.problem(key, f"{text}: no such file")
            return None
        return path

    def subsection(self, key: str) -> Section:
        return Section(f"{self.name}.{key}", self.values.get(key), self.problems)
