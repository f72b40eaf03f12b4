"""The access-control contract between the registry and its access controllers.

The registry decides which accesses a request needs (``registry.access``) and
asks one AccessController to authorize them. The controller answers with a
Grant, or raises Challenge (401: who are you?) or Denied (403: you may not).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Access:
    """One resource action, in the token-scope vocabulary: ``repository:team/app:pull``."""

    type: str
    """``repository`` or ``registry``."""
    name: str
    """A repository name, or ``catalog`` for the registry type."""
    action: str
    """``pull``, ``push``, ``delete`` or ``*``."""

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{self.action}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What the controller allowed, and to whom (None when anonymous)."""

    account: str | None
    accesses: frozenset[Access] = field(default_factory=frozenset)


class Challenge(Exception):
    """Authentication is missing or failed: answer 401 with this WWW-Authenticate value."""

    def __init__(self, www_authenticate: str, detail: object = None) -> None:
        super().__init__(www_authenticate)
        self.www_authenticate = www_authenticate
        self.detail = detail


class Denied(Exception):
    """The caller is known but may not do this: answer 403."""

    def __init__(self, detail: object = None) -> None:
        super().__init__("access denied")
        self.detail = detail


class AccessController(ABC):
    """Decides whether the request's credentials cover every required access."""

    @abstractmethod
    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        """Grant all of ``required`` or raise Challenge / Denied. ``headers`` are the request's."""

    def catalog_filter(self, grant: Grant) -> Callable[[str], bool] | None:
        """Which repositories the catalog lists to the holder of ``grant``; None: every one.

        A controller that knows what each account may pull (the token controller beside the
        built-in token server) lists only those, so the catalog names nothing its reader
        could not pull."""
        return None

    def decider(self, grant: Grant | None) -> Callable[[Access], bool] | None:
        """Whether ``authorize`` would grant each access to the holder of ``grant`` (None: a
        caller without credentials), decided by the access's name alone; None when the
        controller cannot (what a caller may do travels in its credentials, as with an external
        token server's tokens).

        Pages that filter thousands of repositories ask this once instead of authorizing each."""
        return None

    async def close(self) -> None:  # noqa: B027 - most controllers hold nothing to release
        """Release what the controller holds (files watched, clients)."""


class AllowAll(AccessController):
    """No authentication: every request is granted, anonymously."""

    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        return Grant(None, frozenset(required))

    def decider(self, grant: Grant | None) -> Callable[[Access], bool] | None:
        return lambda access: True
