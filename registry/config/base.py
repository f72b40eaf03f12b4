"""What the parser of every settings section reads from."""

from __future__ import annotations

from config_reader import Section


class SectionParser:
    """A part of the parser (one settings section's methods): ``root`` is the whole config as a
    Section, ``problems`` the list every section appends to."""

    root: Section
    problems: list[str]
