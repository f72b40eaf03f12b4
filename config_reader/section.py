"""Reading one section of the configuration with typed accessors, collecting every problem.

An invalid configuration must be reported with every problem at once, so each accessor returns
its default and records the problem instead of raising; the caller raises its own error with
``problems`` at the end. Values arrive as YAML text (the registry reads every scalar as the
text written, and ``REGISTRY_*`` overrides are text too) or as Python values from a caller.
A key with nothing (or only blanks) after it, such as ``age:``, counts as absent in every
accessor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .addresses import parse_address
from .durations import parse_duration

_INTEGER = re.compile(r"[-+]?[0-9]+")


class Section:
    """The mapping under ``name`` (``""`` for the whole file, ``storage.maintenance``,
    ``tokenserver.acl[0]``); sections read from one another share ``problems`` and
    ``unsupported``."""

    def __init__(
        self, name: str, values: object, problems: list[str], unsupported: list[str] | None = None
    ) -> None:
        self.name = name
        self.problems = problems
        self.unsupported: list[str] = [] if unsupported is None else unsupported
        """Keys the caller accepts without implementing them, to name in one warning."""
        if _nothing(values):
            values = {}
        if not isinstance(values, Mapping):
            problems.append(f"{name}: must be a mapping")
            values = {}
        self.values: Mapping[str, Any] = values

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def where(self, key: str) -> str:
        """The dotted name of ``key`` as problems and warnings spell it."""
        return f"{self.name}.{key}" if self.name else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where(key)}: {message}")

    def given(self, key: str) -> bool:
        """Whether ``key`` has a value (a key with nothing or only blanks after it has none)."""
        return not _nothing(self.values.get(key))

    def reject_unknown(self, known: Iterable[str]) -> None:
        """Every other key is a problem: for the registry's own sections and driver parameters."""
        allowed = set(known)
        for key in self.values:
            if key not in allowed:
                self.problem(str(key), f"unknown key (known: {', '.join(sorted(allowed))})")

    def warn_unknown(self, known: Iterable[str]) -> None:
        """Every other key goes to ``unsupported``: Distribution's keys the registry does not
        implement must not stop a Distribution config from loading."""
        allowed = set(known)
        self.unsupported += [self.where(k) for k in sorted(map(str, self.values)) if k not in allowed]

    def section(self, key: str) -> Section:
        return Section(self.where(key), self.values.get(key), self.problems, self.unsupported)

    def section_list(self, key: str) -> list[Section]:
        """A list of mappings, such as ``notifications.endpoints``."""
        value = self.values.get(key)
        if _nothing(value):
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list of mappings")
            return []
        sections = []
        for index, item in enumerate(value):
            section = Section(f"{self.where(key)}[{index}]", item, self.problems, self.unsupported)
            if isinstance(item, Mapping):  # anything else is a problem already, not read further
                sections.append(section)
        return sections

    def string(self, key: str, *, required: bool = False, default: str = "") -> str:
        if not self.given(key):
            if required:
                self.problem(key, "required")
            return default
        value = self.values[key]
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        return value

    def flag(self, key: str, *, default: bool = False) -> bool:
        if not self.given(key):
            return default
        value = self.values[key]
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def integer(self, key: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
        if not self.given(key):
            return default
        value = self.values[key]
        number: int | None = None
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            number = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if number is None or number < minimum or (maximum is not None and number > maximum):
            if maximum is None:
                self.problem(key, f"must be an integer of at least {minimum}")
            else:
                self.problem(key, f"must be an integer from {minimum} to {maximum}")
            return default
        return number

    def duration(self, key: str, *, default: float, minimum: float = 0.0) -> float:
        """Seconds; the syntax is ``durations.parse_duration``'s, the same in every section."""
        if not self.given(key):
            return default
        try:
            seconds = parse_duration(self.values[key])
        except ValueError as exc:
            self.problem(key, str(exc))
            return default
        if seconds < minimum:
            self.problem(key, f"must be at least {minimum:g} seconds")
            return default
        return seconds

    def choice(
        self, key: str, choices: Iterable[str], *, default: str, aliases: Mapping[str, str] | None = None
    ) -> str:
        """One of ``choices`` in any letter case, spelled as in ``choices``; ``aliases`` maps
        other accepted names to one of them."""
        canonical = {choice.lower(): choice for choice in choices}
        text = self.string(key, default=default)
        name = text.lower()
        name = (aliases or {}).get(name, name).lower()
        if name not in canonical:
            self.problem(key, f"{text!r} is not one of {', '.join(canonical.values())}")
            return default
        return canonical[name]

    def string_list(self, key: str) -> list[str]:
        """A list of strings; one string is a list of one."""
        if not self.given(key):
            return []
        value = self.values[key]
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, "must be a list of strings")
            return []
        return list(value)

    def string_lists(self, key: str) -> dict[str, list[str]]:
        """A mapping of names to lists of strings, such as ``http.headers``."""
        section = self.section(key)
        return {str(name): section.string_list(name) for name in section}

    def url(self, key: str) -> str | None:
        """An http or https URL with a host, or None when absent."""
        text = self.string(key)
        if not text:
            return None
        parts = urlsplit(text)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            self.problem(key, "must be a URL such as https://registry.example.com")
            return None
        return text

    def url_path(self, key: str, *, default: str) -> str:
        """The path part of a URL the registry answers on, such as ``/metrics``."""
        text = self.string(key, default=default)
        if not text.startswith("/"):
            self.problem(key, "must start with /")
            return default
        return text

    def address(self, key: str, *, default: str) -> str:
        """HOST:PORT to listen on; the syntax is ``addresses.parse_address``'s."""
        text = self.string(key, default=default)
        try:
            parse_address(text)
        except ValueError as exc:
            self.problem(key, str(exc))
        return text

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


def _nothing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
