"""The registry assembled from parts by ``create_app``: a driver passed in, a wrapped blob
service, sub-applications under a path prefix and extension endpoints that learn who asked."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.api.context import CALLER, Caller, caller_of
from registry.app import create_app
from registry.config import Config, load_config
from registry.references import Digest, RepositoryName
from registry.storage import BlobService, Wrappers, paths
from storage_drivers.inmemory import InMemoryDriver

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ALICE = ("alice", "wonderland")


class CountingBlobs:
    """Wraps the registry's blob service and counts what passes through it."""

    def __init__(self, inner: BlobService) -> None:
        self.inner = inner
        self.opened: list[Digest] = []
        self.ingested: list[tuple[RepositoryName, Digest]] = []
        self.stats = 0
        self.fetches = 0

    @property
    def fetches_at_once(self) -> bool:
        return self.inner.fetches_at_once

    async def size(self, digest: Digest) -> int | None:
        return await self.inner.size(digest)

    async def stat(self, name: RepositoryName, digest: Digest, *, fetching: bool = False) -> int:
        self.stats += 1
        return await self.inner.stat(name, digest, fetching=fetching)

    async def open(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        self.opened.append(digest)
        return await self.inner.open(digest, offset, length)

    async def fetch(
        self, name: RepositoryName, digest: Digest, offset: int = 0, length: int | None = None
    ) -> tuple[int, AsyncIterator[bytes]] | None:
        self.fetches += 1
        fetched = await self.inner.fetch(name, digest, offset, length)
        if fetched is not None:
            self.opened.append(digest)
        return fetched

    async def redirect_url(self, digest: Digest) -> str | None:
        return await self.inner.redirect_url(digest)

    async def open_local(self, digest: Digest) -> int | None:
        self.opened.append(digest)
        return await self.inner.open_local(digest)

    async def mount(self, name: RepositoryName, source: RepositoryName | None, digest: Digest) -> int | None:
        return await self.inner.mount(name, source, digest)

    async def unlink(self, name: RepositoryName, digest: Digest) -> None:
        await self.inner.unlink(name, digest)

    async def ingest(self, name: RepositoryName, source_path: str, digest: Digest, size: int) -> None:
        self.ingested.append((name, digest))
        await self.inner.ingest(name, source_path, digest, size)


def _config(tmp_path: Path, extra: str = "") -> Config:
    config_file = tmp_path / "config.yml"
    config_file.write_text(f"version: 0.1\nstorage: {{inmemory: {{}}}}\n{extra}")
    return load_config(config_file, {})


def _client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _push_image(client: httpx.AsyncClient, name: str, layer: bytes, **auth: Any) -> str:
    config = b"{}"
    for blob in (layer, config):
        pushed = await client.post(f"/v2/{name}/blobs/uploads/?digest={_digest(blob)}", content=blob, **auth)
        assert pushed.status_code == 201, pushed.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config),
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": _digest(layer),
                "size": len(layer),
            }
        ],
    }
    put = await client.put(
        f"/v2/{name}/manifests/1.0",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": OCI_MANIFEST},
        **auth,
    )
    assert put.status_code == 201, put.text
    return _digest(layer)


async def test_a_wrapped_blob_service_serves_real_requests(tmp_path: Path) -> None:
    wrapped: list[CountingBlobs] = []

    def counting(inner: BlobService) -> BlobService:
        wrapped.append(CountingBlobs(inner))
        return wrapped[0]

    driver = InMemoryDriver()
    app = create_app(_config(tmp_path), driver=driver, wrappers=Wrappers(blobs=counting))
    layer = b"layer bytes " * 100
    async with _client(app) as client:
        digest = await _push_image(client, "team/app", layer)
        stats_after_push = wrapped[0].stats
        pulled = await client.get(f"/v2/team/app/blobs/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == layer
    [counter] = wrapped
    assert counter.opened == [Digest.parse(digest)]
    # Finished uploads become blobs through the wrapped service; the manifest push checks its
    # blobs through it too.
    name = RepositoryName("team/app")
    assert counter.ingested == [(name, Digest.parse(digest)), (name, Digest.parse(_digest(b"{}")))]
    assert stats_after_push == 2
    assert counter.stats == 3
    # The content is in the driver that was passed in.
    assert await driver.get_content(paths.blob_data(Digest.parse(digest))) == layer


async def test_a_get_from_storage_whose_reads_are_not_round_trips_asks_for_no_fetch(tmp_path: Path) -> None:
    """Storage in memory (as on the filesystem), redirects off: a GET goes straight to ``stat``
    and the content, without asking the blob service for a fetch it would answer with None."""
    wrapped: list[CountingBlobs] = []

    def counting(inner: BlobService) -> BlobService:
        wrapped.append(CountingBlobs(inner))
        return wrapped[0]

    config_file = tmp_path / "config.yml"
    config_file.write_text("version: 0.1\nstorage: {inmemory: {}, redirect: {disable: true}}\n")
    app = create_app(load_config(config_file, {}), driver=InMemoryDriver(), wrappers=Wrappers(blobs=counting))
    layer = b"layer bytes " * 100
    async with _client(app) as client:
        digest = await _push_image(client, "team/app", layer)
        whole = await client.get(f"/v2/team/app/blobs/{digest}")
        ranged = await client.get(f"/v2/team/app/blobs/{digest}", headers={"Range": "bytes=12-23"})
    assert whole.content == layer
    assert (ranged.status_code, ranged.content) == (206, layer[12:24])
    [counter] = wrapped
    assert counter.fetches == 0
    assert counter.opened == [Digest.parse(digest)] * 2


@pytest.fixture
def htpasswd_config(tmp_path: Path) -> Config:
    user, password = ALICE
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"{user}:{hashed}\n")
    return _config(tmp_path, f"auth: {{htpasswd: {{realm: Dockyard, path: {tmp_path / 'htpasswd'}}}}}\n")


def _recorder(seen: list[tuple[Caller, str, str]]) -> ASGIApp:
    """A sub-application that answers 200 and records the caller, root_path and path it saw."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((caller_of(scope), scope["root_path"], scope["path"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_a_mounted_application_gets_the_account_of_an_authenticated_request(
    htpasswd_config: Config,
) -> None:
    seen: list[tuple[Caller, str, str]] = []
    app = create_app(htpasswd_config, driver=InMemoryDriver(), mounts={"/ui": _recorder(seen)})
    async with _client(app) as client:
        page = await client.get("/ui/repositories/team/app", auth=ALICE)
        top = await client.get("/ui", auth=ALICE)
        anonymous = await client.get("/ui/repositories")
        wrong = await client.get("/ui/", auth=("alice", "not her password"))
        beside = await client.get("/uix", auth=ALICE)
    assert page.status_code == 200
    assert top.status_code == 200
    assert seen == [
        (Caller("alice", "ui"), "/ui", "/ui/repositories/team/app"),
        (Caller("alice", "ui"), "/ui", "/ui"),
    ]
    for refused in (anonymous, wrong):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="Dockyard"'
        assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert beside.status_code == 404  # not below /ui: the API answers, and knows no such path


async def test_extension_endpoints_get_the_caller_and_their_repository(htpasswd_config: Config) -> None:
    seen: list[tuple[Caller, str, str]] = []
    app = create_app(htpasswd_config, driver=InMemoryDriver(), extensions={"usage": _recorder(seen)})
    async with _client(app) as client:
        for_repository = await client.get("/v2/team/app/_dockyard/usage/by-tag", auth=ALICE)
        for_registry = await client.delete("/v2/_dockyard/usage", auth=ALICE)
        anonymous = await client.get("/v2/team/app/_dockyard/usage")
        unknown = await client.get("/v2/team/app/_dockyard/nothing", auth=ALICE)
        bad_name = await client.get("/v2/Team/_dockyard/usage", auth=ALICE)
    assert for_repository.status_code == 200
    assert for_registry.status_code == 200
    assert seen == [
        (
            Caller("alice", "repository-extension", RepositoryName("team/app")),
            "/v2/team/app/_dockyard/usage",
            "/v2/team/app/_dockyard/usage/by-tag",
        ),
        (Caller("alice", "registry-extension"), "/v2/_dockyard/usage", "/v2/_dockyard/usage"),
    ]
    assert anonymous.status_code == 401
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert bad_name.status_code == 400
    assert bad_name.json()["errors"][0]["code"] == "NAME_INVALID"


async def test_api_requests_carry_the_caller_in_their_scope(htpasswd_config: Config) -> None:
    registry = create_app(htpasswd_config, driver=InMemoryDriver())
    callers: list[Caller | None] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        await registry(scope, receive, send)
        callers.append(scope.get(CALLER))

    async with _client(outer) as client:
        await _push_image(client, "team/app", b"layer", auth=ALICE)
        callers.clear()
        tags = await client.get("/v2/team/app/tags/list", auth=ALICE)
        base = await client.get("/v2/", auth=ALICE)
        refused = await client.get("/v2/team/app/tags/list")
    assert tags.json() == {"name": "team/app", "tags": ["1.0"]}
    assert base.status_code == 200
    assert refused.status_code == 401
    assert callers == [Caller("alice", "tags", RepositoryName("team/app")), Caller("alice", "base"), None]


@pytest.mark.parametrize("prefix", ["/", "", "ui", "/v2", "/v2/", "/v2/ui"])
def test_nothing_is_mounted_where_it_would_bypass_the_api(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="outside /v2"):
        create_app(_config(tmp_path), driver=InMemoryDriver(), mounts={prefix: _recorder([])})


def test_a_worker_loads_the_interface_only_when_used(tmp_path: Path) -> None:
    """A registry built from the default configuration imports neither the web interface's
    templates (until the interface's first page) nor its session sealing (until a page needs a
    session): megabytes per worker."""
    program = """
import sys
from starlette.testclient import TestClient
from registry.app import create_app
from registry.config import load_config
app = create_app(load_config(None))
with TestClient(app) as client:
    assert client.get("/v2/").status_code == 200
    print(sorted(name for name in ("jinja2", "cryptography") if name in sys.modules))
    assert client.get("/ui/").status_code == 200
    print(sorted(name for name in ("jinja2", "cryptography") if name in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["[]", "['jinja2']"]


_FIRST_BLOB_GET = """
import asyncio, json, sys
from registry.app import create_app
from registry.config import load_config
from registry.references import Digest, RepositoryName
from registry.storage import paths
from storage_drivers.inmemory import InMemoryDriver

def scope(path):
    # As uvicorn gives it: ASGI spec 2.3, where a client going away is learnt from ``receive``.
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"registry")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 5000),
    }

async def get(app, path):
    sent, done, read = [], asyncio.Event(), []
    async def receive():
        if not read:
            read.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}
    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()
    await app(scope(path), receive, send)
    body = b"".join(bytes(m.get("body", b"")) for m in sent if m["type"] == "http.response.body")
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), body

async def main():
    driver = InMemoryDriver()
    data = b"layer" * 1000
    digest, name = Digest.of(data), RepositoryName.parse("team/app")
    await driver.put_content(paths.blob_data(digest), data)
    await driver.put_content(paths.layer_link(name, digest), paths.link_content(digest))
    app = create_app(load_config(None), driver=driver)
    started, stop = asyncio.Event(), asyncio.Event()
    async def receive():
        if not started.is_set():
            started.set()
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}
    async def send(message):
        pass
    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await started.wait()
    await asyncio.sleep(0.1)
    assert await get(app, "/v2/") == (200, b"{}"), await get(app, "/v2/")
    loaded = set(sys.modules)
    assert await get(app, f"/v2/team/app/blobs/{digest}") == (200, data)
    print(json.dumps(sorted(set(sys.modules) - loaded)))
    stop.set()
    await lifespan

asyncio.run(main())
"""


def test_a_workers_first_blob_get_imports_nothing(tmp_path: Path) -> None:
    """A fresh worker's first blob GET streamed through the registry, after its first request,
    imports no module: anyio's asyncio backend (about 20 ms of CPU), which Starlette's
    streaming response loaded on servers of ASGI spec before 2.4, stays unloaded."""
    result = subprocess.run(
        [sys.executable, "-c", _FIRST_BLOB_GET], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
