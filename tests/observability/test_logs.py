"""The access log and the audit log, read back line by line from a running registry."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.helpers import write_htpasswd
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.pushing import expect, image_manifest, push_blob
from tests.support.registry import RunningRegistry, StartRegistry

PASSWORD = "correct horse battery staple"
FORWARDED_CLIENT = "203.0.113.7"


@pytest.fixture(scope="module")
def audited(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunningRegistry, Path]:
    """htpasswd auth, JSON logs, the audit log in a file; the proxy on 127.0.0.1 is trusted."""
    workdir = tmp_path_factory.mktemp("audited")
    htpasswd = write_htpasswd(workdir / "htpasswd", {"alice": PASSWORD})
    audit = workdir / "audit.log"
    registry = start_registry(
        {
            "auth": {"htpasswd": {"realm": "Dockyard", "path": str(htpasswd)}},
            "log": {"formatter": "json", "audit": {"path": str(audit)}},
        }
    )
    return registry, audit


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def access_entries(registry: RunningRegistry) -> list[dict[str, Any]]:
    return [entry for entry in json_lines(registry.log()) if entry["logger"] == "registry.access"]


def test_access_and_audit_logs_say_who_did_what(audited: tuple[RunningRegistry, Path]) -> None:
    registry, audit = audited
    forwarded = {"X-Forwarded-For": FORWARDED_CLIENT}
    config, layer = b'{"os":"linux"}', os.urandom(2000)
    manifest = image_manifest(config, [layer])
    with httpx.Client(
        base_url=registry.url, auth=("alice", PASSWORD), headers=forwarded, timeout=30
    ) as client:
        for blob in (config, layer):
            push_blob(client, "team/app", blob)
        pushed = expect(
            client.put(
                "/v2/team/app/manifests/v1",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST, "X-Request-Id": "ci-run-42"},
            ),
            201,
        )
        pulled = expect(client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
        expect(client.delete(f"/v2/team/app/manifests/{digest_of(manifest)}"), 202)
        expect(client.delete("/v2/team/app/_dockyard/repository"), 202)
    anonymous = httpx.get(f"{registry.url}/v2/team/app/tags/list")
    assert anonymous.status_code == 401

    assert pushed.headers["X-Request-Id"] == "ci-run-42"  # the trusted proxy's, reused
    assert re.fullmatch(r"[0-9a-f]{32}", pulled.headers["X-Request-Id"])
    entries = access_entries(registry)  # every line of the log is one JSON object
    put = next(e for e in entries if e["request_id"] == "ci-run-42")
    assert put["msg"] == "PUT /v2/team/app/manifests/v1 201"
    assert (put["client"], put["account"], put["method"], put["route"]) == (
        FORWARDED_CLIENT, "alice", "PUT", "manifest",
    )  # fmt: skip
    assert (put["repository"], put["reference"], put["status"]) == ("team/app", "v1", 201)
    assert (put["bytes_in"], put["bytes_out"]) == (len(manifest), 0)
    assert 0 < put["duration"] < 30
    get = next(e for e in entries if e["request_id"] == pulled.headers["X-Request-Id"])
    assert (get["route"], get["status"], get["bytes_out"]) == ("manifest", 200, len(manifest))
    refused = next(e for e in entries if e["request_id"] == anonymous.headers["X-Request-Id"])
    assert (refused["status"], refused["account"], refused["client"]) == (401, "", "127.0.0.1")

    events = json_lines(audit.read_text())
    assert [(e["action"], e["kind"], e["reference"]) for e in events] == [
        ("push", "blob", digest_of(config)),
        ("push", "blob", digest_of(layer)),
        ("push", "manifest", "v1"),
        ("delete", "manifest", digest_of(manifest)),
        ("delete", "repository", ""),
    ]
    for event in events:
        assert (event["account"], event["client"], event["repository"]) == (
            "alice",
            FORWARDED_CLIENT,
            "team/app",
        )
    assert events[2]["digest"] == digest_of(manifest)
    assert events[2]["mediaType"] == OCI_MANIFEST
    assert events[2]["request_id"] == "ci-run-42"

    everything = registry.log() + audit.read_text()
    assert PASSWORD not in everything
    assert "Basic " not in everything
    assert "YWxpY2U6" not in everything


def test_an_untrusted_peer_names_neither_the_client_nor_the_request_id(start_registry: StartRegistry) -> None:
    registry = start_registry({"http": {"trustedproxies": ["10.99.0.0/16"]}})
    response = httpx.get(
        f"{registry.url}/v2/", headers={"X-Request-Id": "spoofed", "X-Forwarded-For": "198.51.100.1"}
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    assert request_id != "spoofed"
    lines = [line for line in registry.log().splitlines() if f"request_id={request_id}" in line]
    assert len(lines) == 1, registry.log()[-2000:]
    assert re.search(r'registry\.access: 127\.0\.0\.1 - "GET /v2/" 200 0 2 [0-9.]+s route=base ', lines[0])
    assert "198.51.100.1" not in registry.log()


def test_a_path_cannot_forge_a_log_line(registry_server: RunningRegistry) -> None:
    response = httpx.get(f"{registry_server.url}/v2/a%0Aforged%22line/tags/list")
    request_id = response.headers["X-Request-Id"]
    lines = registry_server.log().splitlines()
    line = next(line for line in lines if f"request_id={request_id}" in line)
    assert '"GET /v2/a\\nforged\\"line/tags/list" 400' in line
    assert not any(line.startswith("forged") for line in lines)


def test_request_ids_are_unique_across_workers_and_restarts(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=2)
    ids: list[str] = []
    for _ in range(2):
        for _ in range(150):  # a connection each, so both workers answer some
            ids.append(httpx.get(f"{registry.url}/v2/").headers["X-Request-Id"])
        registry.restart()
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


def test_the_audit_log_tells_a_mount_from_a_push_in_one_request(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.log"
    registry = start_registry({"log": {"audit": {"path": str(audit)}}})
    pushed, mounted = os.urandom(1000), os.urandom(1000)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        push_blob(client, "team/source", mounted)
        # A parameter whose name ends in "mount" is not a mount.
        one_request = f"/v2/team/app/blobs/uploads/?digest={digest_of(pushed)}&amount=1"
        expect(client.post(one_request, content=pushed), 201)
        mount = f"/v2/team/app/blobs/uploads/?mount={digest_of(mounted)}&from=team/source"
        expect(client.post(mount), 201)
        # Not mounted (the source lacks it): an upload starts, nothing is written.
        expect(client.post(f"/v2/team/app/blobs/uploads/?mount={digest_of(pushed)}&from=team/source"), 202)
    events = [e for e in json_lines(audit.read_text()) if e["repository"] == "team/app"]
    assert [(e["action"], e["kind"], e["digest"]) for e in events] == [
        ("push", "blob", digest_of(pushed)),
        ("mount", "blob", digest_of(mounted)),
    ]
