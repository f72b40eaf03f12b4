"""Mirrored blobs: streamed while cached, verified before kept, one upstream GET for many clients."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api.client import assert_error
from tests.support.ceph import CephRGW
from tests.support.distribution import DistributionRegistry
from tests.support.images import Blob
from tests.support.nginx import main_config, nginx_binary
from tests.support.processes import ServerProcess, free_port
from tests.support.registry import RunningRegistry, StartRegistry, s3_storage
from tests.support.waiting import until

from .conftest import V2, Stored, Upstream, blob_data, mirror_of

pytestmark = pytest.mark.interop


def blob_file(root: Path, blob: Blob) -> Path:
    hex_digest = blob.digest.removeprefix("sha256:")
    return root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def upstream_gets(distribution: DistributionRegistry, path: str) -> int:
    """Blob GETs the upstream answered, from its request log. The upstream logs a response once
    its handler has returned, which may be after the mirror's clients got their last bytes: the
    count is read once at least one GET is there."""
    pattern = re.compile(rf'http\.request\.method=GET .*http\.request\.uri="{re.escape(path)}"')

    def count() -> int:
        lines = distribution.log().splitlines()
        return sum(1 for line in lines if "response completed" in line and pattern.search(line))

    until(lambda: count() > 0, what="for the upstream to log a GET")
    return count()


def bytes_written_by_workers(registry: RunningRegistry) -> list[int]:
    """What each worker process wrote to files and sockets so far (Linux's /proc accounting)."""
    assert registry.process is not None
    pid = registry.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    written = []
    for child in children:
        fields = dict(line.split(": ") for line in Path(f"/proc/{child}/io").read_text().splitlines())
        written.append(int(fields["wchar"]))
    return written


def fetch(url: str) -> tuple[int, bytes, bool]:
    """Status, body, and whether the body arrived whole (the connection was not cut short)."""
    with httpx.stream("GET", url, timeout=60) as response:
        received = bytearray()
        try:
            for chunk in response.iter_raw():
                received += chunk
        except httpx.HTTPError:
            return response.status_code, bytes(received), False
        return response.status_code, bytes(received), True


@pytest.mark.parametrize("size", [1 << 20, 20 << 20], ids=["one-batch", "many-batches"])
def test_a_corrupt_upstream_blob_never_reaches_a_client_whole_nor_the_cache(
    upstream: Upstream, distribution_upstream: DistributionRegistry, mirror: RunningRegistry, size: int
) -> None:
    blob = Blob("application/octet-stream", os.urandom(size))
    upstream.push_blob("team/corrupt", blob)
    stored = blob_file(distribution_upstream.root, blob)
    corrupted = bytearray(blob.data)
    corrupted[size - 10] ^= 0xFF  # near the end: everything before it streams out first
    stored.write_bytes(corrupted)
    url = f"{mirror.url}/v2/hub/team/corrupt/blobs/{blob.digest}"

    for _ in range(2):  # and not kept: the second pull asks the upstream again, and fails again
        status, body, whole = fetch(url)
        assert not (200 <= status < 300 and whole and len(body) == size), (status, len(body))
        if whole:  # refused before the first byte: the spec's error JSON
            assert status == 502, status
        assert not Stored(mirror).exists(blob_data(blob.digest))

    stored.write_bytes(blob.data)  # repaired upstream: the right bytes now
    status, body, whole = fetch(url)
    assert (status, whole) == (200, True)
    assert hashlib.sha256(body).hexdigest() == blob.digest.removeprefix("sha256:")
    assert Stored(mirror).read(blob_data(blob.digest)) == blob.data


def test_a_blob_the_upstream_lacks_is_unknown(mirror: RunningRegistry) -> None:
    response = httpx.get(f"{mirror.url}/v2/hub/team/corrupt/blobs/sha256:{'1' * 64}", timeout=30)
    assert_error(response, 404, "BLOB_UNKNOWN")
    head = httpx.head(f"{mirror.url}/v2/hub/team/corrupt/blobs/sha256:{'1' * 64}", timeout=30)
    assert head.status_code == 404


def pull_together(urls: list[str]) -> list[str]:
    """GET every URL at once, each on a connection of its own (so that the workers share them);
    the digests of what arrived."""

    async def pull(client: httpx.AsyncClient, url: str) -> str:
        hasher = hashlib.sha256()
        async with client.stream("GET", url) as response:
            assert response.status_code == 200, await response.aread()
            async for chunk in response.aiter_raw():
                hasher.update(chunk)
        return f"sha256:{hasher.hexdigest()}"

    async def pull_all() -> list[str]:
        clients = [httpx.AsyncClient(timeout=120) for _ in urls]
        try:
            return await asyncio.gather(
                *(pull(client, url) for client, url in zip(clients, urls, strict=True))
            )
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    return asyncio.run(pull_all())


@pytest.mark.slow
def test_sixteen_clients_of_one_cold_blob_through_several_workers_make_one_upstream_get(
    start_registry: StartRegistry,
    upstream: Upstream,
    distribution_upstream: DistributionRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Two registries of two workers on one storage root, so that the clients surely reach
    # several processes (one registry's kernel may hand every connection to one worker).
    root = tmp_path_factory.mktemp("shared-cache") / "data"
    config = mirror_of(distribution_upstream.url)
    replicas = [start_registry(config=config, workers=2, root=root) for _ in range(2)]
    blob = Blob("application/octet-stream", os.urandom(64 << 20))
    upstream.push_blob("team/layer", blob)
    urls = [f"{replica.url}/v2/hub/team/layer/blobs/{blob.digest}" for replica in replicas] * 8

    assert pull_together(urls) == [blob.digest] * 16
    assert upstream_gets(distribution_upstream, f"/v2/team/layer/blobs/{blob.digest}") == 1, (
        distribution_upstream.log()[-3000:]
    )
    for replica in replicas:  # each served its eight clients
        assert sum(bytes_written_by_workers(replica)) >= 8 * len(blob.data)
    assert blob_file(replicas[0].root, blob).read_bytes() == blob.data
    fetches = root / "docker/registry/v2/_dockyard/fetches/sha256"
    assert not list(fetches.iterdir()), "a download left its claim or segments behind"
    assert not list(root.rglob("*.dockyard-*")), "left behind"


@pytest.mark.s3
@pytest.mark.slow
def test_replicas_sharing_a_bucket_make_one_upstream_get(
    start_registry: StartRegistry,
    upstream: Upstream,
    distribution_upstream: DistributionRegistry,
    ceph_rgw: CephRGW,
) -> None:
    config = {**mirror_of(distribution_upstream.url), "storage": s3_storage(ceph_rgw)}
    replicas = [start_registry(config=config, workers=2) for _ in range(2)]
    blob = Blob("application/octet-stream", os.urandom(24 << 20))
    upstream.push_blob("team/shared", blob)
    urls = [f"{replica.url}/v2/hub/team/shared/blobs/{blob.digest}" for replica in replicas] * 6

    assert pull_together(urls) == [blob.digest] * 12
    assert upstream_gets(distribution_upstream, f"/v2/team/shared/blobs/{blob.digest}") == 1
    # Cached now: each replica answers with a redirect to the bucket, not from the upstream.
    cached = httpx.get(urls[0], timeout=30)
    assert cached.status_code == 307, cached.text


@pytest.mark.s3
@pytest.mark.slow
def test_followers_reading_segments_never_get_a_corrupt_blob_whole(
    start_registry: StartRegistry,
    upstream: Upstream,
    distribution_upstream: DistributionRegistry,
    ceph_rgw: CephRGW,
) -> None:
    # On S3 the followers read segments, not the download's data: the last batch must reach
    # them only from the verified blob, and a corrupt one never.
    config = {**mirror_of(distribution_upstream.url), "storage": s3_storage(ceph_rgw, redirect=False)}
    mirror = start_registry(config=config, workers=2)
    size = 18 << 20
    blob = Blob("application/octet-stream", os.urandom(size))
    upstream.push_blob("team/corrupt-s3", blob)
    stored = blob_file(distribution_upstream.root, blob)
    corrupted = bytearray(blob.data)
    corrupted[size - 10] ^= 0xFF
    stored.write_bytes(corrupted)
    url = f"{mirror.url}/v2/hub/team/corrupt-s3/blobs/{blob.digest}"

    for _ in range(2):  # and not kept: the next pulls fail again
        with ThreadPoolExecutor(6) as pool:
            for status, body, whole in pool.map(fetch, [url] * 6):
                assert not (200 <= status < 300 and whole and len(body) == size), (status, len(body))
    stored.write_bytes(blob.data)
    assert pull_together([url] * 6) == [blob.digest] * 6


def test_a_client_that_leaves_does_not_stop_the_download_others_wait_on(
    upstream: Upstream, distribution_upstream: DistributionRegistry, mirror: RunningRegistry
) -> None:
    blob = Blob("application/octet-stream", os.urandom(48 << 20))
    upstream.push_blob("team/leaving", blob)
    url = f"{mirror.url}/v2/hub/team/leaving/blobs/{blob.digest}"
    with httpx.stream("GET", url, timeout=60) as leaving:
        assert leaving.status_code == 200
        next(leaving.iter_raw())  # its request started the download; now a second client comes
        with httpx.stream("GET", url, timeout=60) as staying:
            assert staying.status_code == 200
            leaving.close()
            received = hashlib.sha256()
            for chunk in staying.iter_raw():
                received.update(chunk)
    assert f"sha256:{received.hexdigest()}" == blob.digest
    assert upstream_gets(distribution_upstream, f"/v2/team/leaving/blobs/{blob.digest}") == 1
    assert Stored(mirror).read(blob_data(blob.digest)) == blob.data


def test_a_cached_blob_answers_ranges_and_conditions_as_any_blob_without_the_upstream(
    upstream: Upstream, distribution_upstream: DistributionRegistry, mirror: RunningRegistry
) -> None:
    blob = Blob("application/octet-stream", os.urandom(1 << 20))
    upstream.push_blob("team/cached", blob)
    url = f"{mirror.url}/v2/hub/team/cached/blobs/{blob.digest}"
    assert httpx.get(url, timeout=60).content == blob.data  # cold: now cached and linked

    part = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=30, follow_redirects=True)
    assert part.status_code == 206
    assert part.content == blob.data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(blob.data)}"
    beyond = httpx.get(url, headers={"Range": f"bytes={len(blob.data)}-"}, timeout=30)
    assert_error(beyond, 416, "SIZE_INVALID")
    unchanged = httpx.get(url, headers={"If-None-Match": f'"{blob.digest}"'}, timeout=30)
    assert unchanged.status_code == 304
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(blob.data))
    assert upstream_gets(distribution_upstream, f"/v2/team/cached/blobs/{blob.digest}") == 1
    # Served from the cache alone: the upstream was not asked whether it still has the blob.
    asked = re.compile(rf'http\.request\.method=HEAD .*http\.request\.uri="[^"]*{blob.digest}"')
    assert not asked.search(distribution_upstream.log())


def test_an_upstream_that_dies_mid_blob_leaves_nothing_behind(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("dying-upstream")
    distribution = DistributionRegistry(workdir, workdir / "data").start()
    pushing = Upstream(distribution.url, None)
    blob = Blob("application/octet-stream", os.urandom(64 << 20))
    pushing.push_blob("team/cut", blob)
    pushing.http.close()
    mirror = start_registry(config=mirror_of(distribution.url), workers=1)
    url = f"{mirror.url}/v2/hub/team/cut/blobs/{blob.digest}"
    with httpx.stream("GET", url, timeout=60) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        received = len(next(chunks))
        assert distribution.process is not None
        distribution.process.signal_group(signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):  # cut short, never completed
            received += sum(len(chunk) for chunk in chunks)
    assert received < len(blob.data)
    storage = Stored(mirror)
    assert not storage.exists(blob_data(blob.digest))
    until(lambda: not storage.files(f"{V2}/_dockyard/fetches/sha256"), what="for the download to be removed")
    after = httpx.get(url, timeout=30)
    assert_error(after, 503, "UNAVAILABLE")
    distribution.stop()


def test_concurrent_requests_for_a_blob_the_upstream_lacks_are_all_unknown(mirror: RunningRegistry) -> None:
    url = f"{mirror.url}/v2/hub/team/absent/blobs/sha256:{os.urandom(32).hex()}"

    async def get_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(8)))

    for response in asyncio.run(get_all()):
        assert_error(response, 404, "BLOB_UNKNOWN")


def test_downloads_go_through_the_http_proxy_the_environment_names(
    start_registry: StartRegistry,
    upstream: Upstream,
    distribution_upstream: DistributionRegistry,
    tmp_path: Path,
) -> None:
    proxy_port = free_port()
    site = (
        f"server {{\n    listen 127.0.0.1:{proxy_port};\n"
        "    location = /_ready { return 204; }\n"
        "    client_max_body_size 0;\n"  # the registry's S3 requests go through it too
        "    location / { proxy_pass http://$http_host$request_uri; proxy_buffering off; }\n}\n"
    )
    for directory in ("conf", "logs", "tmp"):
        (tmp_path / directory).mkdir()
    (tmp_path / "conf" / "site.conf").write_text(site)
    (tmp_path / "conf" / "nginx.conf").write_text(main_config())
    command = [nginx_binary(), "-p", f"{tmp_path}/", "-c", str(tmp_path / "conf" / "nginx.conf")]
    command += ["-e", str(tmp_path / "logs" / "error.log")]
    command += ["-g", f"daemon off; pid {tmp_path / 'nginx.pid'};"]
    forward = ServerProcess(command, tmp_path / "logs" / "nginx.out")
    try:
        forward.wait_http(f"http://127.0.0.1:{proxy_port}/_ready")
        proxy = {"HTTP_PROXY": f"http://127.0.0.1:{proxy_port}"}
        mirror = start_registry(config=mirror_of(distribution_upstream.url), workers=1, env=proxy)
        blob = Blob("application/octet-stream", os.urandom(9 << 20))
        upstream.push_blob("team/proxied", blob)
        url = f"{mirror.url}/v2/hub/team/proxied/blobs/{blob.digest}"

        status, body, whole = fetch(url)
        assert (status, whole) == (200, True)
        assert body == blob.data
        requests = (tmp_path / "logs" / "access.log").read_text()
        relayed = rf'"GET http://[^ ]+/v2/team/proxied/blobs/{blob.digest} HTTP/1.1" 200 '
        assert re.search(relayed, requests), requests
    finally:
        forward.stop()
