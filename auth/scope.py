"""Resource scopes as clients request them: ``repository:team/app:pull,push`` (spec-auth-scope).

A resource name may hold one ``:`` (a registry host's port), so the type ends at the first colon
and the actions start after the last one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .base import Access

_TYPE = re.compile(r"^([a-z0-9]+)(?:\([a-z0-9]+\))?$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*(?::[0-9]+)?"
_NAME = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_ACTION = re.compile(r"^(?:[a-z]*|\*)$")
MAX_NAME_LENGTH = 255
MAX_SCOPES = 64
"""More resource scopes than this in one token request is refused (no client needs so many)."""


class ScopeError(ValueError):
    """A scope string that does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class ResourceActions:
    """One resource and the actions asked for or granted on it."""

    type: str
    name: str
    actions: tuple[str, ...]

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def claim(self) -> dict[str, object]:
        """The JWT ``access`` entry."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def resource_type(text: str) -> str | None:
    """The type without its deprecated ``(class)`` suffix, or None when malformed."""
    match = _TYPE.match(text)
    return match.group(1) if match else None


def parse_scope(text: str) -> ResourceActions:
    """One ``type:name:action[,action]`` entry."""
    type_text, _, rest = text.partition(":")
    name, _, action_text = rest.rpartition(":")
    kind = resource_type(type_text)
    if kind is None or not name or not action_text:
        raise ScopeError(f"malformed scope {text!r}")
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise ScopeError(f"invalid resource name in scope {text!r}")
    actions: list[str] = []
    for action in action_text.split(","):
        if not _ACTION.match(action):
            raise ScopeError(f"invalid action in scope {text!r}")
        if action and action not in actions:
            actions.append(action)
    return ResourceActions(kind, name, tuple(actions))


def parse_scopes(values: Iterable[str]) -> list[ResourceActions]:
    """Every space-separated scope in every value, merged per resource in order of appearance."""
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for text in value.split():
            parsed = parse_scope(text)
            actions = merged.setdefault((parsed.type, parsed.name), [])
            actions.extend(action for action in parsed.actions if action not in actions)
            if len(merged) > MAX_SCOPES:
                raise ScopeError(f"more than {MAX_SCOPES} resources requested")
    return [ResourceActions(kind, name, tuple(names)) for (kind, name), names in merged.items()]


def group_accesses(accesses: Sequence[Access]) -> list[ResourceActions]:
    """Required accesses as one entry per resource, in order of appearance."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for access in accesses:
        actions = grouped.setdefault((access.type, access.name), [])
        if access.action not in actions:
            actions.append(access.action)
    return [ResourceActions(kind, name, tuple(names)) for (kind, name), names in grouped.items()]


def scope_string(resources: Iterable[ResourceActions]) -> str:
    """Space-separated scopes, as in a challenge's ``scope`` or an OAuth ``scope`` reply."""
    return " ".join(resource.scope() for resource in resources if resource.actions)
