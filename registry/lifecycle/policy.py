"""Retention rules as configured (``storage.maintenance.retention``): which repositories a rule
covers, and which of their tags it keeps. Pure values, read by the configuration and applied by
``retention``.

Repository globs: ``*`` matches within one name component, ``?`` one character of it, ``**``
any number of whole components: ``ci/**`` covers every repository below ``ci/`` (not ``ci``
itself), ``**/cache`` every repository named ``cache`` at any depth (``cache`` too). Tag patterns:
``*`` any characters, ``?`` one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_NAME_TEXT = re.compile(r"[a-z0-9._*?-]+")
_TAG_TEXT = re.compile(r"[A-Za-z0-9._*?-]{1,128}")


@lru_cache(maxsize=256)
def repository_glob(pattern: str) -> re.Pattern[str]:
    """The pattern as a regular expression over repository names; ValueError when it is not a
    glob this module reads."""
    components = pattern.split("/")
    if not pattern or any(not part for part in components):
        raise ValueError(f"{pattern!r} is not a repository glob (empty name component)")
    regex = ""
    for index, part in enumerate(components):
        last = index == len(components) - 1
        if part == "**":
            # "**/" is zero or more leading components; a final "/**" one or more below.
            regex += ".*" if last else "(?:[^/]+/)*"
            continue
        if "**" in part or not _NAME_TEXT.fullmatch(part):
            raise ValueError(
                f"{pattern!r} is not a repository glob (lowercase name characters, * and ? within "
                "a component, ** as a whole component)"
            )
        regex += "".join(_translate(char, "[^/]") for char in part) + ("" if last else "/")
    if pattern.endswith("/**"):
        regex = regex[: -len(".*")] + ".+"
    return re.compile(regex)


@lru_cache(maxsize=256)
def tag_glob(pattern: str) -> re.Pattern[str]:
    if not _TAG_TEXT.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not a tag pattern (tag characters, * and ?)")
    return re.compile("".join(_translate(char, ".") for char in pattern))


def _translate(char: str, any_char: str) -> str:
    if char == "*":
        return f"{any_char}*"
    if char == "?":
        return any_char
    return re.escape(char)


@dataclass(frozen=True, slots=True)
class Keep:
    """A tag is kept when any clause keeps it."""

    newest: int | None = None
    """The newest N tags by push time."""
    pushed_within: float | None = None
    """Seconds: tags pushed more recently than this."""
    pulled_within: float | None = None
    """Seconds: tags pulled more recently than this (as far as pulls were recorded)."""
    tags: tuple[str, ...] = ()
    """Patterns of tags kept whatever their age."""

    def keeps_tag(self, tag: str) -> bool:
        return any(tag_glob(pattern).fullmatch(tag) for pattern in self.tags)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    repositories: tuple[str, ...]
    keep: Keep

    def covers(self, name: str) -> bool:
        return any(repository_glob(pattern).fullmatch(name) for pattern in self.repositories)

    def describe(self) -> str:
        return ", ".join(self.repositories)


def rule_for(rules: tuple[RetentionRule, ...], name: str) -> tuple[int, RetentionRule] | None:
    """The first rule covering ``name`` with its number (from 1), or None: keep every tag."""
    for number, rule in enumerate(rules, start=1):
        if rule.covers(name):
            return number, rule
    return None
