"""A full or read-only disk: 503 with the storage's own code, one log line per incident, and no
acknowledged byte lost; pushes work again once space is freed, without a restart."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integrity.small_disk import fill, free, remount, small_filesystem
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.pushing import (
    expect,
    image_manifest,
    push_blob,
    push_manifest,
    start_upload,
)
from tests.support.registry import RunningRegistry, StartRegistry

MIB = 1 << 20
REFUSALS = 24
"""Requests refused during one incident: many more than there are workers."""


@pytest.fixture(scope="module", params=[1, 4], ids=["one-worker", "four-workers"])
def disk_registry(
    request: pytest.FixtureRequest, start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningRegistry, Path]]:
    with small_filesystem(tmp_path_factory.mktemp("small-disk")) as mount:
        registry = start_registry(workers=request.param, root=mount / "registry")
        try:
            yield registry, mount
        finally:
            registry.stop()
            free(mount)


@pytest.fixture
def registry(disk_registry: tuple[RunningRegistry, Path]) -> RunningRegistry:
    return disk_registry[0]


@pytest.fixture
def mount(disk_registry: tuple[RunningRegistry, Path]) -> Iterator[Path]:
    yield disk_registry[1]
    free(disk_registry[1])


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    # A fresh connection per request, so that the requests spread over every worker.
    with httpx.Client(
        base_url=registry.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
    ) as http:
        yield http


def _refused(response: httpx.Response, code: str = "STORAGE_FULL") -> None:
    assert response.status_code == 503, (response.request.method, response.status_code, response.text)
    assert response.json()["errors"][0]["code"] == code, response.text
    assert int(response.headers["Retry-After"]) > 0


def _range_end(response: httpx.Response) -> int:
    match = re.fullmatch(r"0-(\d+)", response.headers["Range"])
    assert match, response.headers
    return int(match.group(1))


def _status(client: httpx.Client, location: str) -> int:
    """The size the upload's status reports (``Range: 0-0`` only for an empty one)."""
    return _range_end(expect(client.get(location), 204)) + 1


def _log_lines(registry: RunningRegistry, text: str) -> int:
    return sum(text in line for line in registry.log().splitlines())


def test_a_failed_finishing_put_on_a_full_disk_keeps_every_acknowledged_byte(
    registry: RunningRegistry, mount: Path, client: httpx.Client
) -> None:
    data = os.urandom(MIB)
    digest = digest_of(data)
    location = start_upload(client, "full/finish")
    patched = expect(client.patch(location, content=data, headers={"Content-Range": f"0-{MIB - 1}"}), 202)
    assert patched.headers["Range"] == f"0-{MIB - 1}"
    location = patched.headers["Location"]
    fill(mount)
    _refused(client.put(location, params={"digest": digest}))
    assert _status(client, location) == MIB  # and again from whichever worker answers
    assert _status(client, location) == MIB
    _refused(client.put(location, params={"digest": digest}))
    free(mount)
    assert _status(client, location) == MIB
    expect(client.put(location, params={"digest": digest}), 201)
    blob = expect(client.get(f"/v2/full/finish/blobs/{digest}"), 200)
    assert blob.content == data
    expect(client.get(location), 404)  # the finished upload is gone


@pytest.mark.parametrize("before", [MIB, MIB + 1000], ids=["aligned", "unaligned"])
def test_a_patch_cut_by_a_full_disk_resumes_from_what_was_written(
    registry: RunningRegistry, mount: Path, client: httpx.Client, before: int
) -> None:
    data = os.urandom(before + 6 * MIB)
    digest = digest_of(data)
    location = start_upload(client, "full/patch")
    location = expect(
        client.patch(location, content=data[:before], headers={"Content-Range": f"0-{before - 1}"}), 202
    ).headers["Location"]
    fill(mount, leave=2 * MIB)
    cut = {"Content-Range": f"{before}-{len(data) - 1}"}
    _refused(client.patch(location, content=data[before:], headers=cut))
    written = _status(client, location)
    assert before <= written < len(data), written
    assert _status(client, location) == written
    free(mount)
    rest = data[written:]
    location = expect(
        client.patch(location, content=rest, headers={"Content-Range": f"{written}-{len(data) - 1}"}), 202
    ).headers["Location"]
    expect(client.put(location, params={"digest": digest}), 201)
    assert expect(client.get(f"/v2/full/patch/blobs/{digest}"), 200).content == data


def _streamed(data: bytes) -> Iterator[bytes]:
    for offset in range(0, len(data), 64 << 10):
        yield data[offset : offset + (64 << 10)]


def test_every_push_mode_on_a_full_disk_is_refused_and_logged_once(
    registry: RunningRegistry, mount: Path, client: httpx.Client
) -> None:
    name = "full/modes"
    config = b'{"architecture": "amd64", "os": "linux"}'
    layer = os.urandom(300_000)
    push_blob(client, name, config)
    push_blob(client, name, layer)
    manifest = image_manifest(config, [layer])
    data = os.urandom(2 * MIB)
    digest = digest_of(data)
    streamed = start_upload(client, name)
    # A chunked push with its first chunk acknowledged (an empty upload's Range reads 0-0 too).
    head, tail = os.urandom(MIB), os.urandom(MIB)
    chunked = start_upload(client, name)
    expect(client.patch(chunked, content=head, headers={"Content-Range": f"0-{MIB - 1}"}), 202)
    pieces = {"Content-Range": f"{MIB}-{2 * MIB - 1}"}
    started_before = _log_lines(registry, "storage is full (")
    ended_before = _log_lines(registry, "storage is full: over after")
    fill(mount)
    for _ in range(REFUSALS // 6):
        _refused(client.post(f"/v2/{name}/blobs/uploads/"))  # a session's start
        _refused(client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data))
        _refused(client.patch(chunked, content=tail, headers=pieces))
        _refused(client.patch(streamed, content=_streamed(data)))  # chunked transfer encoding
        _refused(client.put(chunked, params={"digest": digest_of(head + tail)}, content=tail, headers=pieces))
        _refused(
            client.put(f"/v2/{name}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
        )
        expect(client.get(f"/v2/{name}/blobs/{digest_of(layer)}"), 200)  # pulls go on
    if registry.workers == 1:
        assert _log_lines(registry, "storage is full (") - started_before == 1
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json() == {"storage": "full"}
    started = _log_lines(registry, "storage is full (") - started_before
    assert started <= registry.workers, registry.log()[-3000:]
    assert "Traceback" not in registry.log()

    free(mount)
    # Space is back: pushes work without a restart, and each worker that saw the incident ends it.
    for _ in range(REFUSALS):
        push_blob(client, name, os.urandom(1000))
    chunked_size = _status(client, chunked)
    assert MIB <= chunked_size <= 2 * MIB
    rest = (head + tail)[chunked_size:]
    if rest:
        continued = {"Content-Range": f"{chunked_size}-{2 * MIB - 1}"}
        chunked = expect(client.patch(chunked, content=rest, headers=continued), 202).headers["Location"]
    expect(client.put(chunked, params={"digest": digest_of(head + tail)}), 201)
    push_blob(client, name, data)
    push_manifest(client, name, "v1", manifest, OCI_MANIFEST)
    ended = _log_lines(registry, "storage is full: over after") - ended_before
    assert _log_lines(registry, "storage is full (") - started_before == started  # no new incident
    if registry.workers == 1:
        assert ended == 1
        assert expect(client.get("/readyz"), 200).json() == {"storage": "ok"}
    # (a worker may also end an incident an earlier test left open in it)
    assert 1 <= ended <= registry.workers


def test_a_read_only_disk_refuses_writes_and_serves_reads(
    registry: RunningRegistry, mount: Path, client: httpx.Client
) -> None:
    layer = os.urandom(100_000)
    digest = push_blob(client, "full/readonly", layer)
    remount(mount, read_only=True)
    try:
        _refused(client.post("/v2/full/readonly/blobs/uploads/"), "STORAGE_READ_ONLY")
        _refused(
            client.post("/v2/full/readonly/blobs/uploads/", params={"digest": digest_of(b"x")}, content=b"x"),
            "STORAGE_READ_ONLY",
        )
        assert expect(client.get(f"/v2/full/readonly/blobs/{digest}"), 200).content == layer
    finally:
        remount(mount, read_only=False)
    push_blob(client, "full/readonly", os.urandom(1000))
    assert "Traceback" not in registry.log()
