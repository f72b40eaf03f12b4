"""Which redirects a mirror follows: blob downloads only, to http(s) only, never into loopback or
link-local addresses unless the upstream lives there, and never with the upstream's credentials.

No registry redirects to arbitrary places on demand, so the upstream here is a small HTTP server
of the test's own that answers like a registry whose blobs live elsewhere."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.api.client import assert_error
from tests.support.registry import RunningRegistry, StartRegistry

from .conftest import UPSTREAM_PASSWORD, mirror_of

BLOB = os.urandom(4096)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@dataclass
class Recorded:
    locations: dict[str, str] = field(default_factory=dict)
    """Repository -> where its blob GETs are sent."""
    storage_headers: list[dict[str, str]] = field(default_factory=list)


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def redirecting() -> Iterator[tuple[str, str, Recorded]]:
    """(upstream URL, blob storage URL, what they saw): the upstream wants Basic credentials and
    sends blob and manifest GETs wherever ``locations`` says."""
    recorded = Recorded()

    class Storage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorded.storage_headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()
            self.wfile.write(BLOB)

        def log_message(self, *args: object) -> None:
            pass

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "authorization" not in {k.lower() for k in self.headers}:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="upstream"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            repository = self.path.removeprefix("/v2/").rsplit("/", 2)[0]
            self.send_response(307)
            self.send_header("Location", recorded.locations[repository])
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    storage, storage_url = serve(Storage)
    registry, registry_url = serve(Registry)
    yield registry_url, storage_url, recorded
    registry.shutdown()
    storage.shutdown()


@pytest.fixture(scope="module")
def mirror(start_registry: StartRegistry, redirecting: tuple[str, str, Recorded]) -> RunningRegistry:
    return start_registry(config=mirror_of(redirecting[0]), workers=1)


def test_a_blob_redirect_to_the_upstreams_storage_is_followed_without_credentials(
    mirror: RunningRegistry, redirecting: tuple[str, str, Recorded]
) -> None:
    _, storage_url, recorded = redirecting
    recorded.locations["team/stored"] = f"{storage_url}/bucket/blob?signature=abc"
    response = httpx.get(f"{mirror.url}/v2/hub/team/stored/blobs/{DIGEST}", timeout=30)
    assert response.status_code == 200, response.text
    assert response.content == BLOB
    assert recorded.storage_headers, "the storage was never asked"
    assert all("authorization" not in headers for headers in recorded.storage_headers)


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:80/blob",
        "http://0.0.0.0:9/blob",
        "file:///etc/passwd",
        "ftp://127.0.0.1/blob",
    ],
    ids=["link-local", "link-local-v6", "unspecified", "file", "ftp"],
)
def test_blob_redirects_elsewhere_are_refused(
    mirror: RunningRegistry, redirecting: tuple[str, str, Recorded], location: str
) -> None:
    recorded = redirecting[2]
    repository = f"team/refused-{abs(hash(location)) % 10000}"
    recorded.locations[repository] = location
    missing = f"sha256:{os.urandom(32).hex()}"  # not cached by an earlier test
    response = httpx.get(f"{mirror.url}/v2/hub/{repository}/blobs/{missing}", timeout=30)
    error = assert_error(response, 502, "UNKNOWN")
    assert "redirect" in error["detail"]["reason"]
    assert UPSTREAM_PASSWORD not in response.text


def test_a_manifest_redirect_is_not_followed(
    mirror: RunningRegistry, redirecting: tuple[str, str, Recorded]
) -> None:
    _, storage_url, recorded = redirecting
    recorded.locations["team/manifest"] = f"{storage_url}/manifest"
    before = len(recorded.storage_headers)
    response = httpx.get(f"{mirror.url}/v2/hub/team/manifest/manifests/latest", timeout=30)
    assert "redirected" in assert_error(response, 502, "UNKNOWN")["detail"]["reason"]
    assert len(recorded.storage_headers) == before
