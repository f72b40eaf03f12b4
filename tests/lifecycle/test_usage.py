"""``dockyard usage`` and the usage record: figures checked against the blob files on disk, with two
repositories sharing a base layer pushed by skopeo; the record as the HTTP endpoints serve it
(and refuse it before any walk, or without access); a garbage collection run's record against a
fresh walk; the command's walk looks at nothing its figures do not use."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auth.keygen import generate_token_key
from bench.gc import build_store
from registry.lifecycle.collect import Options
from registry.lifecycle.guard import PushGuard
from registry.lifecycle.inventory import take_inventory
from registry.lifecycle.usage import collect_and_record, measure, usage_of
from registry.references import Digest, RepositoryName, Tag
from registry.storage import Storage, paths
from storage_drivers import FileInfo
from storage_drivers.filesystem import FilesystemDriver
from tests.auth.registries import bearer_client, fetch_token, token_registry
from tests.auth.servers import start_token_server
from tests.lifecycle.commands import blob_file, dockyard, garbage_collect, push_blob
from tests.storage.recording import put_image
from tests.support.containers import ContainerTools
from tests.support.images import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Blob,
    Image,
    Layer,
    digest_of,
    json_bytes,
    random_image,
    random_layer,
    write_oci_layout,
)
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.served import Served


def _image(layers: list[Layer]) -> Image:
    config = Blob(
        OCI_CONFIG,
        json_bytes(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"test.nonce": os.urandom(8).hex()}},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            }
        ),
    )
    manifest = Blob(
        OCI_MANIFEST,
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.blob.descriptor() for layer in layers],
            }
        ),
    )
    return Image(manifest, config, layers)


def _size(root: Path, digest: str) -> int:
    return (root / blob_file(digest)).stat().st_size


def _stored(root: Path) -> tuple[int, int]:
    """Bytes and number of every blob's data file on disk."""
    files = list((root / "docker/registry/v2/blobs").rglob("data"))
    return sum(f.stat().st_size for f in files), len(files)


def _referenced(root: Path, image: Image) -> set[str]:
    assert all((root / blob_file(b.digest)).is_file() for b in [image.manifest, *image.blobs])
    return {image.manifest.digest, *(b.digest for b in image.blobs)}


def _usage_json(registry: RunningRegistry) -> dict[str, Any]:
    done = dockyard(registry.config_path, "usage", "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in document["repositories"]}


def test_usage_figures_match_the_blobs_on_disk(
    start_registry: StartRegistry, container_tools: ContainerTools, tmp_path: Path
) -> None:
    registry = start_registry(root=tmp_path / "root")
    root = registry.root
    base = random_layer(size=64 * 1024)
    app = _image([base, random_layer(size=16 * 1024)])
    api = _image([base, random_layer(size=8 * 1024)])
    api_next = _image([base, random_layer(size=4 * 1024)])
    layout = write_oci_layout(tmp_path / "layout", {"app": app, "api": api, "api-next": api_next})
    host = registry.host
    with Served(registry.url) as served:
        missing = served.http.get("/v2/_dockyard/usage")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "USAGE_UNKNOWN"

        container_tools.skopeo("copy", f"oci:{layout}:app", f"docker://{host}/usage/app:v1")
        container_tools.skopeo("copy", f"oci:{layout}:app", f"docker://{host}/usage/app:latest")
        container_tools.skopeo("copy", f"oci:{layout}:api", f"docker://{host}/usage/api:v1")
        container_tools.skopeo("copy", f"oci:{layout}:api-next", f"docker://{host}/usage/api:v2")
        orphan = os.urandom(3000)
        push_blob(served.http, "usage/api", orphan, digest_of(orphan))

        document = _usage_json(registry)
        figures = _by_name(document)
        assert set(figures) == {"usage/app", "usage/api"}
        app_digests = _referenced(root, app)
        api_digests = _referenced(root, api) | _referenced(root, api_next)
        stored, blobs = _stored(root)
        assert document["stored_bytes"] == stored
        assert document["blobs"] == blobs
        assert document["unreferenced_bytes"] == len(orphan)
        for name, mine, theirs in [
            ("usage/app", app_digests, api_digests),
            ("usage/api", api_digests, app_digests),
        ]:
            assert figures[name]["referenced_bytes"] == sum(_size(root, d) for d in mine)
            assert figures[name]["unique_bytes"] == sum(_size(root, d) for d in mine - theirs)
            assert figures[name]["unique_bytes"] < figures[name]["referenced_bytes"]  # the base is shared
            assert figures[name]["last_push"] is not None
        assert (figures["usage/app"]["tags"], figures["usage/app"]["manifests"]) == (2, 1)
        assert (figures["usage/api"]["tags"], figures["usage/api"]["manifests"]) == (2, 2)

        table = dockyard(registry.config_path, "usage")
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[0].split()[0] == "REPOSITORY"
        assert any(line.startswith("usage/api ") for line in table.stdout.splitlines())
        assert f"({stored} bytes)" in table.stdout

        everything = served.http.get("/v2/_dockyard/usage")
        assert everything.status_code == 200, everything.text
        assert everything.headers["Last-Modified"].endswith("GMT")
        assert everything.json()["measured"].endswith("Z")
        assert _by_name(everything.json())["usage/app"] == figures["usage/app"]
        one = served.http.get("/v2/usage/api/_dockyard/usage")
        assert one.status_code == 200, one.text
        assert {k: v for k, v in one.json().items() if k != "measured"} == figures["usage/api"]
        assert one.json()["measured"].endswith("Z")
        head = served.http.head("/v2/usage/api/_dockyard/usage")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Content-Length"] == str(len(one.content))
        unknown = served.http.get("/v2/usage/none/_dockyard/usage")
        assert unknown.status_code == 404
        assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        assert served.http.post("/v2/usage/api/_dockyard/usage").status_code == 405

        # A run's record is the walk it made, less what it removed: what a fresh walk finds.
        garbage_collect(registry.config_path, "--grace-period", "0s")
        after_run = served.http.get("/v2/_dockyard/usage").json()
        assert after_run["unreferenced_bytes"] == 0
        assert after_run["stored_bytes"] == stored - len(orphan) == _stored(root)[0]
        fresh = _usage_json(registry)
        assert {k: v for k, v in after_run.items() if k != "measured"} == {
            k: v for k, v in fresh.items() if k != "measured"
        }


def test_usage_endpoints_need_pull_or_the_catalogs_access(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = start_token_server(
        tmp_path_factory.mktemp("usage-token-server"),
        generate_token_key(tmp_path_factory.mktemp("usage-key"), "ES256"),
    )
    try:
        registry = token_registry(start_registry, server)
        alice = bearer_client(
            registry, fetch_token(server, "alice", "repository:alice/app:pull,push", "registry:catalog:*")
        )
        assert alice.push_image("alice/app", "v1", random_image(layers=1)).status_code == 201
        assert dockyard(registry.config_path, "usage").returncode == 0
        assert alice.request("GET", "/v2/_dockyard/usage").status_code == 200
        assert alice.request("GET", "/v2/alice/app/_dockyard/usage").status_code == 200
        # reader may pull every repository, but not list them
        reader = bearer_client(
            registry, fetch_token(server, "reader", "repository:alice/app:pull", "registry:catalog:*")
        )
        assert reader.request("GET", "/v2/alice/app/_dockyard/usage").status_code == 200
        refused = reader.request("GET", "/v2/_dockyard/usage")
        assert refused.status_code == 401
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        bob = bearer_client(registry, fetch_token(server, "bob", "repository:alice/app:pull"))
        assert bob.request("GET", "/v2/alice/app/_dockyard/usage").status_code == 401
    finally:
        server.stop()


def test_read_only_mode_measures_without_writing_a_record(start_registry: StartRegistry) -> None:
    registry = start_registry({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    done = dockyard(registry.config_path, "usage", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["repositories"] == []
    assert "read-only" in done.stderr
    with Served(registry.url) as served:
        assert served.http.get("/v2/_dockyard/usage").status_code == 404


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"repositories": "none"}', b"\xff\xfe"])
def test_an_unreadable_record_reads_as_none_yet(
    start_registry: StartRegistry, tmp_path: Path, content: bytes
) -> None:
    registry = start_registry(root=tmp_path / "root")
    record = tmp_path / "root/docker/registry/v2/_dockyard/usage/summary"
    record.parent.mkdir(parents=True)
    record.write_bytes(content)
    with Served(registry.url) as served:
        for path in ("/v2/_dockyard/usage", "/v2/any/name/_dockyard/usage", "/ui/"):
            response = served.http.get(path)
            assert response.status_code == (200 if path == "/ui/" else 404), response.text
            if path != "/ui/":
                assert response.json()["errors"][0]["code"] == "USAGE_UNKNOWN"


class _Touched(FilesystemDriver):
    """Records every path listed, stat-ed or read in batches (as the walk does)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.touched: list[str] = []

    async def _list_many(self, paths_: Sequence[str]) -> list[list[str] | None]:
        self.touched += paths_
        return await super()._list_many(paths_)

    async def _stat_many(self, paths_: Sequence[str]) -> list[FileInfo | None]:
        self.touched += paths_
        return await super()._stat_many(paths_)

    async def _get_many(self, paths_: Sequence[str]) -> list[bytes | None]:
        self.touched += paths_
        return await super()._get_many(paths_)


async def test_the_usage_walk_looks_only_at_what_its_figures_use(tmp_path: Path) -> None:
    """Tags are counted from their directory's listing: where they point, their history and the
    times of tag and layer links are not looked at, and the figures are a full walk's."""
    build_store(tmp_path, repositories=3)
    driver = _Touched(str(tmp_path))
    usage = await measure(driver, record=False)
    tags = [path for path in driver.touched if "/_manifests/tags/" in path]
    assert tags == [], tags[:5]
    layer_links = [path for path in driver.touched if "/_layers/" in path and path.endswith("/link")]
    assert layer_links == [], layer_links[:5]
    assert [r.tags for r in usage.repositories] == [5, 5, 5]
    full = usage_of(await take_inventory(FilesystemDriver(str(tmp_path))), usage.measured)
    assert full.blobs == 60  # 20 blobs a repository
    assert usage == full


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_runs_record_has_each_repositorys_last_push(tmp_path: Path, workers: int) -> None:
    """The newest revision link of each repository, with the walk in one process or split among
    several: also after a push of a manifest the repository holds already, which rewrites its
    link and nothing else a listing shows."""
    driver = FilesystemDriver(str(tmp_path))
    storage = Storage(driver, PushGuard(driver))
    image = random_image(layers=1)
    names = [RepositoryName.parse("times/app"), RepositoryName.parse("times/api")]
    digest = Digest.parse(image.digest)
    for name, moment in zip(names, [1_000_000_000, 1_100_000_000], strict=True):
        await put_image(storage, name, image, tags=["v1"])
        link = tmp_path / paths.manifest_revision_link(name, digest).lstrip("/")
        os.utime(link, (moment, moment))  # pushed long ago
    options = Options(grace_period=0.0, workers=workers)

    async def last_pushes() -> dict[str, str]:
        await collect_and_record(driver, options, lambda line: None)
        record = json.loads(await driver.get_content(paths.usage_record()))
        return {entry["name"]: entry["last_push"] for entry in record["repositories"]}

    assert await last_pushes() == {"times/app": "2001-09-09T01:46:40Z", "times/api": "2004-11-09T11:33:20Z"}
    await storage.manifests.put(names[1], Tag.parse("v1"), image.manifest.data, image.manifest.media_type)
    pushed = (await driver.stat(paths.manifest_revision_link(names[1], digest))).modified
    pushed_at = datetime.fromtimestamp(pushed, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await last_pushes() == {"times/app": "2001-09-09T01:46:40Z", "times/api": pushed_at}
