"""The one place that decides which access a request needs.

GET and HEAD pull; POST, PUT and PATCH pull and push; DELETE deletes; the
catalog needs ``registry:catalog:*``; a cross-repository mount also wants pull
on the source repository, which is asked for separately: without it the client
gets a fresh upload session, never a link.
"""

from __future__ import annotations

from auth import Access

from .api.router import Route

CATALOG_ACCESS = Access("registry", "catalog", "*")


def required_access(route: Route, method: str, name: str | None) -> list[Access]:
    if route is Route.BASE:
        return []
    if route is Route.CATALOG:
        return [CATALOG_ACCESS]
    assert name is not None
    if method in {"GET", "HEAD"}:
        actions = ["pull"]
    elif method == "DELETE":
        actions = ["delete"]
    else:
        actions = ["pull", "push"]
    return [Access("repository", name, action) for action in actions]


def mount_source_access(source: str) -> Access:
    return Access("repository", source, "pull")
