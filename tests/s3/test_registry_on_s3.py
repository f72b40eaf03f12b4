"""The registry on S3: blob GETs answered with presigned URLs (or streamed when redirects are
disabled), finished uploads that leave nothing behind, and a bucket shared with CNCF
Distribution 2.8 in both directions."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.s3.faults import gateway_address, through
from tests.support.ceph import CephRGW
from tests.support.containers import ContainerTools
from tests.support.images import every_blob, random_image, write_oci_layout
from tests.support.processes import ServerProcess, free_port
from tests.support.pushing import push_blob, push_blob_chunked
from tests.support.registry import RunningRegistry, StartRegistry, s3_storage
from tests.support.served import Served
from tests.support.stall import StallingRelay

pytestmark = pytest.mark.s3

MIB = 1 << 20


@pytest.fixture
def on_s3(s3_registry_server: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=s3_registry_server.url, timeout=60) as http:
        yield http


def test_blob_get_redirects_to_a_presigned_url_of_the_distribution_key(
    on_s3: httpx.Client, s3_registry_server: RunningRegistry, new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    data = os.urandom(3 * MIB + 1)
    digest = push_blob(on_s3, repo, data)

    redirect = on_s3.get(f"/v2/{repo}/blobs/{digest}")
    assert redirect.status_code == 307, redirect.text
    assert redirect.headers["Docker-Content-Digest"] == digest
    target = httpx.URL(redirect.headers["Location"])
    s3 = s3_registry_server.storage["s3"]
    assert f"{target.scheme}://{target.netloc.decode()}" == s3["regionendpoint"]
    hex_digest = digest.removeprefix("sha256:")
    assert (
        target.path == f"/{s3['bucket']}/docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    )
    assert target.params["X-Amz-Expires"] == "1200"
    with httpx.Client(timeout=60) as storage:
        fetched = storage.get(target, headers={"Range": "bytes=5-"})
        assert fetched.status_code == 206
        assert fetched.content == data[5:]
        # Signed for GET only: the URL a client is given cannot replace the blob.
        assert storage.put(target, content=b"not the blob").status_code == 403
        assert storage.get(target).content == data

    head = on_s3.head(f"/v2/{repo}/blobs/{digest}")  # answered by the registry itself
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert "Location" not in head.headers
    bad_range = on_s3.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert bad_range.status_code == 416, "checked by the registry, not redirected"
    assert bad_range.headers["Content-Range"] == f"bytes */{len(data)}"


def test_blob_get_is_streamed_when_redirects_are_disabled(
    s3_registry_server_noredirect: RunningRegistry, new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    data = os.urandom(3 * MIB + 1)
    with httpx.Client(base_url=s3_registry_server_noredirect.url, timeout=60) as http:
        digest = push_blob(http, repo, data)
        response = http.get(f"/v2/{repo}/blobs/{digest}")
        assert response.status_code == 200, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        assert response.content == data
        ranged = http.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=1048570-2097160"})
        assert ranged.status_code == 206
        assert ranged.content == data[1048570:2097161]


def test_a_streamed_get_checks_the_link_and_the_range_before_any_byte(
    s3_registry_server_noredirect: RunningRegistry, new_repository: Callable[[], str]
) -> None:
    """A GET through the registry opens the content while it reads the repository's link: a blob
    another repository holds answers 404 BLOB_UNKNOWN, none of its bytes; a Range is answered by
    the registry's own rules against the size the content's answer gave (416 with that size),
    whatever S3 makes of it."""
    repo, other = new_repository(), new_repository()
    data = os.urandom(MIB + 7)
    size = len(data)
    with httpx.Client(base_url=s3_registry_server_noredirect.url, timeout=60) as http:
        digest, empty = push_blob(http, repo, data), push_blob(http, repo, b"")
        for _ in range(3):  # the content found while the link is missing: closed each time
            for headers in ({}, {"Range": "bytes=0-"}, {"Range": "bytes=5-10"}, {"Range": "bytes=-3"}):
                missing = http.get(f"/v2/{other}/blobs/{digest}", headers=headers)
                assert missing.status_code == 404, missing.text
                assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        whole = http.get(f"/v2/{repo}/blobs/{digest}")
        assert whole.status_code == 200
        assert whole.headers["Content-Length"] == str(size)
        assert whole.content == data
        satisfiable = {
            "bytes=0-": (0, size - 1),
            "bytes=5-": (5, size - 1),
            "bytes=5-10": (5, 10),
            f"bytes={size - 1}-": (size - 1, size - 1),
            f"bytes=10-{size + 1000}": (10, size - 1),
            f"bytes=10-{10**30}": (10, size - 1),
            "bytes=-100": (size - 100, size - 1),
            f"bytes=-{size + 5}": (0, size - 1),
        }
        for header, (first, last) in satisfiable.items():
            ranged = http.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
            assert ranged.status_code == 206, (header, ranged.text)
            assert ranged.headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
            assert ranged.headers["Content-Length"] == str(last - first + 1), header
            assert ranged.content == data[first : last + 1], header
        unsatisfiable = [
            f"bytes={size}-",
            f"bytes={size + 5}-",
            f"bytes={size + 5}-{size + 10}",
            "bytes=10-5",
            "bytes=-0",
            "bytes=5-10,20-30",
            "bytes=x-",
            "items=0-5",
        ]
        for header in unsatisfiable:
            refused = http.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
            assert refused.status_code == 416, (header, refused.status_code)
            assert refused.headers["Content-Range"] == f"bytes */{size}", header
            assert refused.json()["errors"][0]["code"] == "SIZE_INVALID"
        assert http.get(f"/v2/{repo}/blobs/{empty}").content == b""
        refused = http.get(f"/v2/{repo}/blobs/{empty}", headers={"Range": "bytes=0-"})
        assert refused.status_code == 416
        assert refused.headers["Content-Range"] == "bytes */0"


def test_a_client_hanging_up_stops_the_read_from_the_bucket(
    start_registry: StartRegistry, ceph_rgw: CephRGW, new_repository: Callable[[], str]
) -> None:
    """A client that leaves in the middle of a blob stops the registry's read of it from the
    gateway (the bytes a relay in front of the gateway passes on), not just the sending."""
    with StallingRelay(gateway_address(ceph_rgw), lambda _: False) as relay:
        storage = through(relay, s3_storage(ceph_rgw, redirect=False))
        server = start_registry({"storage": storage}, workers=1)
        repo = new_repository()
        data = os.urandom(64 * MIB)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            digest = push_blob(http, repo, data)
        before = relay.answered
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", server.port)) as client:
                request = f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: registry\r\n\r\n"
                client.sendall(request.encode())
                taken = 0
                while taken < MIB:
                    taken += len(client.recv(1 << 16))
        answered = relay.answered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the reads have settled
            time.sleep(0.5)
            answered, last = relay.answered, answered
            if answered == last:
                break
        server.stop()
    relayed = answered - before
    assert relayed < len(data), f"{relayed / MIB:.0f} MiB read from the gateway for two hung-up GETs"


@pytest.mark.parametrize("redirects", [True, False], ids=["redirected", "streamed"])
def test_blob_missing_from_the_bucket_is_unknown(
    redirects: bool,
    request: pytest.FixtureRequest,
    ceph_rgw: CephRGW,
    new_repository: Callable[[], str],
) -> None:
    """A blob whose data is gone while its repository's link stays (as Distribution's garbage
    collection leaves links) answers 404 BLOB_UNKNOWN, never a redirect to nothing or a body cut
    short; so does a blob the repository never held. What is stored streams whole and in ranges."""
    server: RunningRegistry = request.getfixturevalue(
        "s3_registry_server" if redirects else "s3_registry_server_noredirect"
    )
    repo = new_repository()
    data = os.urandom(2 * MIB + 3)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        kept, gone = push_blob(http, repo, data), push_blob(http, repo, os.urandom(1000))
        fetched = http.get(f"/v2/{repo}/blobs/{kept}", follow_redirects=True)
        assert fetched.content == data
        last = {"Range": "bytes=-700000"}
        suffix = http.get(f"/v2/{repo}/blobs/{kept}", headers=last, follow_redirects=True)
        assert suffix.status_code == 206
        assert suffix.content == data[-700000:]
        hex_digest = gone.removeprefix("sha256:")
        key = f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
        ceph_rgw.client().delete_object(Bucket=server.storage["s3"]["bucket"], Key=key)
        unheld = "sha256:" + "0" * 64
        for digest in (gone, unheld):
            missing = http.get(f"/v2/{repo}/blobs/{digest}")
            assert missing.status_code == 404, missing.text
            assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_finished_uploads_leave_nothing_in_the_bucket(
    on_s3: httpx.Client,
    s3_registry_server: RunningRegistry,
    ceph_rgw: CephRGW,
    new_repository: Callable[[], str],
) -> None:
    """Single PUTs, multipart uploads and content the registry already held: once each push is
    answered, its upload folder is gone, multipart upload included."""
    repo = new_repository()
    small, large = os.urandom(3000), os.urandom(12 * MIB + 5)
    pushed = [
        push_blob_chunked(on_s3, repo, small, 1000),
        push_blob_chunked(on_s3, repo, large, 4 * MIB),
        push_blob(on_s3, repo, small),  # held already: the upload is dropped, not moved
    ]
    for digest, data in zip(pushed, (small, large, small), strict=True):
        assert on_s3.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True).content == data
    bucket, s3 = s3_registry_server.storage["s3"]["bucket"], ceph_rgw.client()
    prefix = f"docker/registry/v2/repositories/{repo}/_uploads/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []) == []
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []) == []


class Distribution:
    """CNCF Distribution 2.8 (Debian's ``docker-registry``) on a given ``storage`` section."""

    def __init__(self, workdir: Path, storage: dict[str, Any]) -> None:
        self.host = f"127.0.0.1:{free_port()}"
        config = {
            "version": 0.1,
            "log": {"level": "info"},
            "http": {"addr": self.host, "secret": "distribution-on-s3"},
            # No upload purging: it would race with the registry sharing the bucket.
            "storage": {**storage, "maintenance": {"uploadpurging": {"enabled": False}}},
        }
        (workdir / "config.yml").write_text(yaml.safe_dump(config))
        # aws-sdk-go refuses to start when AWS_CA_BUNDLE is set (it cannot add a CA bundle to its
        # HTTP transport); the gateway is plain HTTP on loopback, so none is needed.
        self.process = ServerProcess(
            ["docker-registry", "serve", str(workdir / "config.yml")],
            workdir / "distribution.log",
            env={"AWS_CA_BUNDLE": ""},
        )
        self.process.wait_http(f"{self.url}/v2/")

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture(scope="module")
def distribution_on_the_bucket(
    tmp_path_factory: pytest.TempPathFactory, s3_registry_server: RunningRegistry
) -> Iterator[Distribution]:
    distribution = Distribution(tmp_path_factory.mktemp("distribution-s3"), s3_registry_server.storage)
    yield distribution
    distribution.stop()


def test_a_bucket_shared_with_distribution_in_both_directions(
    container_tools: ContainerTools,
    s3_registry_server: RunningRegistry,
    distribution_on_the_bucket: Distribution,
    new_repository: Callable[[], str],
    tmp_path: Path,
) -> None:
    """Distribution's S3 keys are the registry's: each serves what the other pushed."""
    ours, theirs = s3_registry_server, distribution_on_the_bucket
    for pusher, puller in ((ours, theirs), (theirs, ours)):
        image = random_image(layers=2)
        layout = write_oci_layout(tmp_path / f"layout-{os.urandom(2).hex()}", {"v1": image})
        repo = new_repository()
        container_tools.skopeo("copy", f"oci:{layout}:v1", f"docker://{pusher.host}/{repo}:v1")
        with Served(puller.url) as served:
            assert served.manifest(repo, "v1").data == image.manifest.data
            assert set(served.verify_tree(repo, "v1")) == {b.digest for b in every_blob(image)}
            assert served.tags(repo) == ["v1"]
        inspected = json.loads(container_tools.skopeo("inspect", f"docker://{puller.host}/{repo}:v1").stdout)
        assert inspected["Digest"] == image.digest
