"""Every malformed name, tag, digest, range, manifest, upload id and query parameter gets a 4xx with
the spec's error JSON: never a 5xx, never a traceback, and no file touched outside the storage root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.badinput.cases import Case, all_cases
from tests.badinput.conftest import ESCAPE_MARKER, OTHER_REPOSITORY, REPOSITORY, Target, tree_snapshot
from tests.integrity.layout import check_layout, paths_below
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.pushing import expect

ERROR_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
    "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS", "PAGINATION_NUMBER_INVALID", "RANGE_INVALID", "TAG_INVALID",
}  # fmt: skip
"""The codes of the OCI distribution spec, plus the Docker registry API's own."""

CASES = all_cases()


@pytest.fixture(scope="module")
def outside_before(target: Target) -> dict[str, dict[str, tuple[bool, int, int]]]:
    """What lies around the storage root before the sweep: the sandbox it sits in, and the
    server's working directory."""
    return _outside(target)


def _outside(target: Target) -> dict[str, dict[str, tuple[bool, int, int]]]:
    root = target.registry.root
    log = target.registry.workdir / "registry.log"
    return {
        "sandbox": tree_snapshot(target.sandbox, {root}),
        "workdir": tree_snapshot(target.registry.workdir, {log}),
    }


def _check_error_body(case: Case, status: int, body: bytes) -> None:
    document = json.loads(body)
    errors = document["errors"]
    assert isinstance(errors, list), document
    assert errors, document
    for error in errors:
        assert error["code"] in ERROR_CODES, error
        assert isinstance(error["message"], str), error
        assert error["message"], error
    assert errors[0]["code"] in case.codes, (status, errors)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_request_gets_a_4xx_error(
    case: Case, target: Target, outside_before: dict[str, dict[str, tuple[bool, int, int]]]
) -> None:
    response = target.send(
        case.method, case.request_target(target), case.headers, case.request_body(target), case.chunked
    )
    assert 400 <= response.status < 500, (response.status, response.body[:500])
    assert response.status in case.statuses, (response.status, response.body[:500])
    assert b"Traceback" not in response.body
    assert b'File "' not in response.body
    if case.protocol_level:
        assert response.body == (b"" if case.method == "HEAD" else b"Invalid HTTP request received.")
        assert target.send("GET", b"/v2/").status == 200
        return
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.headers["Content-Type"].startswith("application/json")
    if case.method != "HEAD":
        _check_error_body(case, response.status, response.body)
    alive = target.send("GET", b"/v2/")
    assert alive.status == 200


def test_empty_name_components_are_refused_and_create_nothing(target: Target) -> None:
    """The name grammar applies to the path as sent: ``a//b``, ``/a`` and ``a/`` are invalid
    names, never read as ``a/b`` or ``a``. Slashes outside the name change nothing."""
    canonical = target.send("GET", f"/v2/{REPOSITORY}/tags/list".encode())
    outside = target.send("GET", f"//v2/{REPOSITORY}/tags/list//".encode())
    assert canonical.status == 200
    assert (outside.status, outside.body) == (canonical.status, canonical.body)
    fresh = "badinput/fresh"
    for name in ("badinput//fresh", "/badinput/fresh", "badinput/fresh/", "badinput/fresh//", "/"):
        pushed = target.send(
            "POST", f"/v2/{name}/blobs/uploads/?digest={digest_of(b'x')}".encode(), body=b"x"
        )
        assert pushed.status == 400, (name, pushed.status, pushed.body[:300])
        assert json.loads(pushed.body)["errors"][0]["code"] == "NAME_INVALID", name
    assert target.send("GET", f"/v2/{fresh}/tags/list".encode()).status == 404
    assert [p for p in paths_below(target.registry.root) if "fresh" in p.name] == []


@pytest.mark.parametrize(
    "last", ["%00", "..%2F..%2F" + ESCAPE_MARKER, "z" * 5000, "%ff%fe", "UPPER", "a%2Fb", "%E2%80%8B"]
)
@pytest.mark.parametrize("endpoint", ["/v2/_catalog", f"/v2/{REPOSITORY}/tags/list"])
def test_junk_last_marker_is_only_a_position(target: Target, endpoint: str, last: str) -> None:
    """``last`` is a lexical position, so junk is no error: the page after it."""
    response = target.send("GET", f"{endpoint}?n=5&last={last}".encode())
    assert response.status == 200, (response.status, response.body[:300])
    document = json.loads(response.body)
    if "tags" in endpoint:
        assert document["name"] == REPOSITORY
        assert isinstance(document["tags"], list)
    else:
        assert isinstance(document["repositories"], list)


def test_nothing_changed_outside_the_root(
    target: Target, outside_before: dict[str, dict[str, tuple[bool, int, int]]]
) -> None:
    """Runs after the sweep: nothing appeared or changed around the root, no path in the root
    escaped the layout, and the server never hit an unexpected error."""
    assert _outside(target) == outside_before
    for top in (Path("/tmp"), Path("/"), target.registry.workdir.parent, target.sandbox.parent):
        assert [p for p in os.listdir(top) if ESCAPE_MARKER in p] == [], top
    root = target.registry.root
    escaped = [p for p in paths_below(root) if ESCAPE_MARKER in str(p.relative_to(root))]
    assert escaped == []
    report = check_layout(root)
    assert report.problems == []
    assert {name for name, _ in report.layers} == {REPOSITORY, OTHER_REPOSITORY}
    assert {name for name, _ in report.revisions} == {REPOSITORY}
    assert set(report.tags) == {(REPOSITORY, "latest")}
    log = target.registry.log()
    assert "Traceback" not in log
    assert "unexpected" not in log
    with httpx.Client(base_url=target.registry.url, timeout=30) as client:
        served = expect(client.get(f"/v2/{REPOSITORY}/manifests/latest"), 200)
        assert served.content == target.manifest
        assert served.headers["Content-Type"] == OCI_MANIFEST
