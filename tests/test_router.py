"""Which endpoint a raw request path names, and what it leaves for validation."""

from __future__ import annotations

import pytest

from registry.api.router import ACTIONS, Match, Route, match, route_of

DIGEST = "sha256:" + "ab" * 32
UUID = "0f0e0d0c-0b0a-4908-8706-050403020100"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/", Match(Route.BASE)),
        ("/v2", Match(Route.BASE)),
        ("/v2/_catalog", Match(Route.CATALOG)),
        ("/v2/_catalog/", Match(Route.CATALOG)),
        ("/v2/%5Fcatalog", Match(Route.CATALOG)),
        ("/v2/app/tags/list", Match(Route.TAGS, "app")),
        ("/v2/team/app/tags/list", Match(Route.TAGS, "team/app")),
        ("/v2/app/manifests/latest", Match(Route.MANIFEST, "app", "latest")),
        (f"/v2/team/app/manifests/{DIGEST}", Match(Route.MANIFEST, "team/app", DIGEST)),
        (f"/v2/app/blobs/{DIGEST}", Match(Route.BLOB, "app", DIGEST)),
        ("/v2/app/blobs/uploads/", Match(Route.UPLOAD_START, "app")),
        ("/v2/app/blobs/uploads", Match(Route.UPLOAD_START, "app")),
        (f"/v2/app/blobs/uploads/{UUID}", Match(Route.UPLOAD, "app", UUID)),
        (f"/v2/a/b/c/blobs/uploads/{UUID}", Match(Route.UPLOAD, "a/b/c", UUID)),
        (f"/v2/app/referrers/{DIGEST}", Match(Route.REFERRERS, "app", DIGEST)),
        # Names may contain the words the routes use; the endpoint is read from the end.
        ("/v2/blobs/tags/list", Match(Route.TAGS, "blobs")),
        ("/v2/manifests/manifests/latest", Match(Route.MANIFEST, "manifests", "latest")),
        (f"/v2/x/blobs/blobs/{DIGEST}", Match(Route.BLOB, "x/blobs", DIGEST)),
        ("/v2/tags/list/tags/list", Match(Route.TAGS, "tags/list")),
        ("/v2/blobs/uploads/blobs/uploads/", Match(Route.UPLOAD_START, "blobs/uploads")),
        # Empty segments outside a name are ignored; inside one they stay, for the name check.
        ("//v2//_catalog", Match(Route.CATALOG)),
        ("//v2//", Match(Route.BASE)),
        ("//v2/app/tags/list//", Match(Route.TAGS, "app")),
        ("/v2/a//b/tags/list", Match(Route.TAGS, "a//b")),
        ("/v2//a/b/tags/list", Match(Route.TAGS, "/a/b")),
        ("/v2/a/b//blobs/uploads/", Match(Route.UPLOAD_START, "a/b/")),
        (f"/v2/a/b/x///blobs/{DIGEST}", Match(Route.BLOB, "a/b/x//", DIGEST)),
        ("/v2///manifests/latest", Match(Route.MANIFEST, "/", "latest")),
        ("/v2//tags/list", Match(Route.TAGS, "")),
        # Percent-escapes are decoded per segment; an encoded slash never splits a name.
        ("/v2/a%2Fb/tags/list", Match(Route.TAGS, "a%2Fb")),
        ("/v2/a%2fb/manifests/latest", Match(Route.MANIFEST, "a%2fb", "latest")),
        ("/v2/%2e%2e/tags/list", Match(Route.TAGS, "..")),
        ("/v2/app/manifests/..%2F..%2Fetc", Match(Route.MANIFEST, "app", "..%2F..%2Fetc")),
        ("/v2/%61pp/manifests/l%61test", Match(Route.MANIFEST, "app", "latest")),
        ("/v2/app/manifests/%252F", Match(Route.MANIFEST, "app", "%2F")),
        ("/v2/app/manifests/%00", Match(Route.MANIFEST, "app", "\x00")),
        ("/v2/../tags/list", Match(Route.TAGS, "..")),
        # Validation is not the router's business: these reach the name and reference checks.
        ("/v2/UPPER/tags/list", Match(Route.TAGS, "UPPER")),
        ("/v2/app/blobs/sha256:../../x", None),
    ],
)
def test_match(path: str, expected: Match | None) -> None:
    assert match(path.encode()) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/v1/",
        "/v3/",
        "/V2/",
        "/v2x/",
        "/api/v2/",
        "/v2/app",
        "/v2/app/tags",
        "/v2/tags/list",
        "/v2/manifests/latest",
        "/v2/app/unknown/thing",
        "/v2/app/manifests",
        "//v2//app//tags//list//",
        "/v2/app/manifests//latest",
        f"/v2/app/blobs//uploads/{UUID}",
        "/v2/blobs/uploads/x",
        "/v2/_catalog/extra",
        "/v2/app/a%ff/tags/list",
        "/v2/app%c3/tags/list",
        "/readyz",
    ],
)
def test_no_endpoint(path: str) -> None:
    assert match(path.encode()) is None


def test_raw_non_ascii_bytes_reach_validation_undecoded() -> None:
    found = match("/v2/café/tags/list".encode())
    assert found is not None
    assert found.route is Route.TAGS
    assert found.name == "café".encode().decode("latin-1")


def test_every_route_allows_its_methods_and_head_with_get() -> None:
    allowed = {route: set(actions) for route, actions in ACTIONS.items()}
    assert set(allowed) == set(Route)
    for route, methods in allowed.items():
        assert methods <= {"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"}, route
        assert ("GET" in methods) == ("HEAD" in methods), route
    assert allowed[Route.UPLOAD_START] == {"POST"}
    assert allowed[Route.CATALOG] == {"GET", "HEAD"}
    assert allowed[Route.MANIFEST] == {"GET", "HEAD", "PUT", "DELETE"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/_dockyard/usage", Match(Route.REGISTRY_EXTENSION, None, "usage")),
        ("/v2/_dockyard/usage/by-repository/", Match(Route.REGISTRY_EXTENSION, None, "usage/by-repository")),
        ("/v2/%5Fdockyard/usage", Match(Route.REGISTRY_EXTENSION, None, "usage")),
        ("/v2/team/app/_dockyard/usage", Match(Route.REPOSITORY_EXTENSION, "team/app", "usage")),
        # No name holds a _dockyard component, so what follows is the extension's, whatever it says.
        ("/v2/app/_dockyard/tags/list", Match(Route.REPOSITORY_EXTENSION, "app", "tags/list")),
        (
            f"/v2/app/_dockyard/manifests/{DIGEST}",
            Match(Route.REPOSITORY_EXTENSION, "app", f"manifests/{DIGEST}"),
        ),
        ("/v2/_dockyard", None),
        ("/v2/app/_dockyard/", None),
    ],
)
def test_dockyard_components_start_extension_endpoints(path: str, expected: Match | None) -> None:
    assert match(path.encode()) == expected


def test_a_request_is_matched_once_and_again_only_when_its_path_changed() -> None:
    scope = {"type": "http", "path": "/v2/app/tags/list", "raw_path": b"/v2/app/tags/list"}
    first = route_of(scope)
    assert first == Match(Route.TAGS, "app")
    assert route_of(scope) is first  # the kept match, not a second one
    scope["raw_path"] = b"/v2/other/tags/list"
    assert route_of(scope) == Match(Route.TAGS, "other")
    assert route_of({"type": "http", "path": "/v2/"}) == Match(Route.BASE)  # no raw_path given
