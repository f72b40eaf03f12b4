"""Access controllers: who may pull, push and delete what.

``create_access_controller`` builds the controller configured in the ``auth``
section of the registry's configuration; with no section, every request is
allowed (the five-minute local start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Access, AccessController, AllowAll, Challenge, Denied, Grant

__all__ = [
    "Access",
    "AccessController",
    "AllowAll",
    "AuthConfigError",
    "Challenge",
    "Denied",
    "Grant",
    "create_access_controller",
]


class AuthConfigError(ValueError):
    """The auth section is unusable; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def create_access_controller(section: Mapping[str, Any] | None) -> AccessController:
    """Build the controller for the configuration's ``auth`` section."""
    if not section:
        return AllowAll()
    names = sorted(section)
    if len(names) > 1:
        raise AuthConfigError([f"auth: configure exactly one of {', '.join(names)}"])
    raise AuthConfigError([f"auth.{names[0]}: not supported yet"])
