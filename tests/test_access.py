"""The access decision: every route and method it is asked about, and the access each needs."""

from __future__ import annotations

import subprocess
import sys

from auth import Access
from registry.access import Action, required_access
from registry.api.router import ACTIONS, Route

NAME = "team/app"
PULL = (Access("repository", NAME, "pull"),)
PUSH = (Access("repository", NAME, "pull"), Access("repository", NAME, "push"))
DELETE = (Access("repository", NAME, "delete"),)
EXTENSION = (Access("registry", "tools", "*"),)
"""A registry-wide extension named ``tools``: the target is the extension's name."""

REQUIRED: dict[Route, dict[str, tuple[Access, ...]]] = {
    Route.BASE: {"GET": (), "HEAD": ()},
    Route.CATALOG: {
        "GET": (Access("registry", "catalog", "*"),),
        "HEAD": (Access("registry", "catalog", "*"),),
    },
    Route.TAGS: {"GET": PULL, "HEAD": PULL},
    Route.MANIFEST: {"GET": PULL, "HEAD": PULL, "PUT": PUSH, "DELETE": DELETE},
    Route.BLOB: {"GET": PULL, "HEAD": PULL, "DELETE": DELETE},
    Route.UPLOAD_START: {"POST": PUSH},
    Route.UPLOAD: {"GET": PULL, "HEAD": PULL, "PATCH": PUSH, "PUT": PUSH, "DELETE": DELETE},
    Route.REFERRERS: {"GET": PULL, "HEAD": PULL},
    Route.REGISTRY_EXTENSION: {
        method: EXTENSION for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    },
    Route.REPOSITORY_EXTENSION: {
        "GET": PULL,
        "HEAD": PULL,
        "POST": PUSH,
        "PUT": PUSH,
        "PATCH": PUSH,
        "DELETE": DELETE,
    },
}


def _target(route: Route) -> str | None:
    if route in {Route.BASE, Route.CATALOG}:
        return None
    return "tools" if route is Route.REGISTRY_EXTENSION else NAME


def test_the_table_names_every_route_and_method_the_router_allows() -> None:
    assert {route: set(methods) for route, methods in REQUIRED.items()} == {
        route: set(actions) for route, actions in ACTIONS.items()
    }


def test_every_route_and_method_needs_exactly_its_access() -> None:
    for route, methods in REQUIRED.items():
        for method, expected in methods.items():
            got = required_access(ACTIONS[route][method], _target(route))
            assert tuple(got) == expected, (route, method)


def test_registry_wide_usage_needs_the_catalogs_access() -> None:
    """It names every repository, as the catalog does."""
    for method in ("GET", "HEAD"):
        got = required_access(ACTIONS[Route.REGISTRY_EXTENSION][method], "usage")
        assert tuple(got) == (Access("registry", "catalog", "*"),)


def test_a_mount_source_needs_pull_on_it() -> None:
    assert tuple(required_access(Action.PULL, "other/base")) == (Access("repository", "other/base", "pull"),)


def test_the_decision_stands_below_the_http_layer() -> None:
    code = "import sys, registry.access; print(sorted(m for m in sys.modules if m.startswith('registry.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['registry.access']"
