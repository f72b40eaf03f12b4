"""``validation``: which manifests are accepted (foreign layer URLs, index children)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from config_reader import Section

from .base import SectionParser


@dataclass(frozen=True)
class ValidationConfig:
    urls_allow: tuple[str, ...] = ()
    urls_deny: tuple[str, ...] = ()
    index_children: str = "all"
    index_platforms: tuple[tuple[str, str], ...] = ()
    check_references: bool = True
    """False with ``validation.disabled``: manifests may reference blobs and manifests the
    registry does not hold."""


class ValidationParser(SectionParser):
    """Reads ``validation``."""

    def _validation(self) -> ValidationConfig:
        validation = self.root.section("validation")
        validation.warn_unknown({"disabled", "enabled", "manifests"})
        disabled = validation.flag("disabled")
        if "enabled" in validation:
            disabled = not validation.flag("enabled", default=True)
        manifests = validation.section("manifests")
        urls = manifests.section("urls")
        indexes = manifests.section("indexes")
        if disabled:
            return ValidationConfig(check_references=False)
        allow = self._patterns(urls, "allow")
        deny = self._patterns(urls, "deny")
        policy = indexes.choice("platforms", ("all", "none", "list"), default="all")
        platforms = []
        for entry in indexes.section_list("platformlist"):
            platform = (entry.string("os", required=True), entry.string("architecture", required=True))
            if all(platform):
                platforms.append(platform)
        return ValidationConfig(allow, deny, policy, tuple(platforms))

    @staticmethod
    def _patterns(urls: Section, key: str) -> tuple[str, ...]:
        patterns = urls.string_list(key)
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                urls.problem(key, f"{pattern!r}: {exc}")
        return tuple(patterns)
