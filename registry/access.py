"""The one place that decides which access a request needs, in its own words.

A request is one action on a repository or on the registry; the HTTP layer
translates its route and method into one (``registry.api.router.ACTIONS``).

On a repository: pulling needs pull; pushing needs pull and push (a push reads
what it links); deleting needs delete. On the registry: entering (the base
endpoint, mounted sub-applications) needs no access, only a caller the
controller accepts; listing repositories needs ``registry:catalog:*``; an
extension endpoint for the whole registry needs ``registry:<its name>:*``, as
the catalog does, except those that list repositories as the catalog does
(``LISTING_EXTENSIONS``): they need the catalog's access. A cross-repository
mount also wants pull on the source repository, which is asked for separately:
without it the client gets a fresh upload session, never a link.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from enum import StrEnum

from auth import Access


class Action(StrEnum):
    PULL = "pull"
    """Read a repository (target: its name)."""
    PUSH = "push"
    """Write a repository (target: its name)."""
    DELETE = "delete"
    """Delete from a repository (target: its name)."""
    ENTER = "enter"
    """Reach the registry at all (no target)."""
    LIST = "list"
    """List the registry's repositories (no target)."""
    EXTENSION = "extension"
    """Use a registry-wide extension endpoint (target: the extension's name)."""


CATALOG_ACCESS = Access("registry", "catalog", "*")
LISTING_EXTENSIONS = frozenset({"usage"})
"""Registry-wide extensions that name every repository (usage figures, as ``/v2/_dockyard/usage``)."""


def accesses_for(action: Action, target: str | None) -> Sequence[Access]:
    """The accesses the controller must grant for ``action`` on ``target``; uncached, for
    deciding about thousands of targets at once (``required_access`` for one request's)."""
    if action is Action.PULL:
        return (Access("repository", _named(target), "pull"),)
    if action is Action.PUSH:
        name = _named(target)
        return (Access("repository", name, "pull"), Access("repository", name, "push"))
    if action is Action.DELETE:
        return (Access("repository", _named(target), "delete"),)
    if action is Action.ENTER:
        return ()
    if action is Action.LIST or (action is Action.EXTENSION and target in LISTING_EXTENSIONS):
        return (CATALOG_ACCESS,)
    return (Access("registry", _named(target), "*"),)


# Every request asks, mostly about the same few repositories: a lookup costs less than building
# the accesses again.
required_access = functools.lru_cache(maxsize=4096)(accesses_for)


def _named(target: str | None) -> str:
    assert target is not None, "a repository action or an extension names its target"
    return target
