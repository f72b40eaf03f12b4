"""Uploads on S3 whose requests declare their length: each part goes to S3 as its bytes arrive
(storage_drivers/s3/writer.py). Pushed through the API, over real sockets, against Ceph RGW
with the driver's default 10 MiB parts: bodies crossing part boundaries at odd offsets, a
request ending inside a part continued by another replica, clients leaving inside a part, and a
wrong digest."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.ceph import CephRGW
from tests.support.pushing import push_blob, push_blob_chunked, start_upload
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.s3

MIB = 1 << 20


@pytest.fixture
def on_s3(s3_registry_server: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=s3_registry_server.url, timeout=120) as http:
        yield http


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def leftovers(registry: RunningRegistry, rgw: CephRGW, repo: str) -> tuple[list[str], list[str]]:
    """The objects and multipart uploads left under the repository's uploads folder."""
    bucket, s3 = registry.storage["s3"]["bucket"], rgw.client()
    prefix = f"docker/registry/v2/repositories/{repo}/_uploads/"
    objects = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return [item["Key"] for item in objects], [item["Key"] for item in uploads]


@pytest.mark.parametrize(
    "size",
    [1, 3 * MIB + 5, 10 * MIB - 1, 10 * MIB, 14 * MIB + 3, 15 * MIB, 37 * MIB + 11],
    ids=["one-byte", "under-a-part", "short-of-a-part", "one-part", "part-and-a-half", "15MiB", "37MiB"],
)
def test_monolithic_pushes_of_sizes_around_parts(
    on_s3: httpx.Client,
    s3_registry_server: RunningRegistry,
    ceph_rgw: CephRGW,
    new_repository: Callable[[], str],
    size: int,
) -> None:
    repo = new_repository()
    data = os.urandom(size)
    digest = push_blob(on_s3, repo, data)
    fetched = on_s3.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
    assert fetched.content == data
    assert leftovers(s3_registry_server, ceph_rgw, repo) == ([], [])


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (27 * MIB + 3, 3 * MIB + 1234),
        (23 * MIB, 7 * MIB - 1),
        (12 * MIB + 1, MIB + 17),
        (31 * MIB, 11 * MIB + 5),
    ],
)
def test_chunked_pushes_with_odd_chunks_through_the_replicas(
    balanced: httpx.Client, new_repository: Callable[[], str], size: int, chunk: int
) -> None:
    """Each PATCH on the next replica (round-robin): chunks end inside parts, their tails are
    continued by another process, parts cross chunks."""
    repo = new_repository()
    data = os.urandom(size)
    digest = push_blob_chunked(balanced, repo, data, chunk)
    assert balanced.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True).content == data


def test_a_patch_ending_inside_a_part_is_continued_by_another_replica(
    balanced: httpx.Client, new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    data = os.urandom(24 * MIB + 7)
    cuts = [0, 4 * MIB + 1, 13 * MIB, 13 * MIB + 1, len(data)]
    location = start_upload(balanced, repo)
    for first, end in itertools.pairwise(cuts):
        response = balanced.patch(
            location, content=data[first:end], headers={"Content-Range": f"{first}-{end - 1}"}
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{end - 1}"
        location = response.headers["Location"]
        status = balanced.get(location)  # asked of the next replica
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{end - 1}"
    digest = digest_of(data)
    assert balanced.put(location, params={"digest": digest}).status_code == 201
    assert balanced.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True).content == data


def send_and_leave(url: str, method: str, target: str, length: int, body: bytes) -> None:
    """Send a request declaring ``length`` body bytes, then only ``body``, then close."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80)) as connection:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
        )
        connection.sendall(head.encode() + body)
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(60)
        while connection.recv(65536):  # until the registry closes its side
            pass


def settled_size(http: httpx.Client, location: str) -> int:
    """The upload's size once it no longer changes (the left request's end processed)."""
    seen: list[int] = []
    for _ in range(100):
        status = http.get(location)
        assert status.status_code == 204, status.text
        seen.append(int(status.headers["Range"].split("-")[1]) + 1)
        if len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]:
            return seen[-1]
        time.sleep(0.3)
    raise AssertionError(f"the upload's size kept changing: {seen}")


def test_a_client_leaving_inside_a_part_leaves_a_resumable_upload(
    on_s3: httpx.Client,
    s3_registry_server: RunningRegistry,
    new_repository: Callable[[], str],
) -> None:
    """A PATCH announcing 12 MiB after a 3 MiB tail, cut after 8 MiB: the part it completed is
    kept, the one under way is dropped; the client continues from the size it is told."""
    repo = new_repository()
    data = os.urandom(22 * MIB + 9)
    location = start_upload(on_s3, repo)
    first = 3 * MIB + 5
    response = on_s3.patch(location, content=data[:first], headers={"Content-Range": f"0-{first - 1}"})
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    target = urlsplit(str(on_s3.base_url.join(location)))
    send_and_leave(
        s3_registry_server.url,
        "PATCH",
        f"{target.path}?{target.query}",
        12 * MIB,
        data[first : first + 8 * MIB],
    )
    kept = settled_size(on_s3, location)
    assert first <= kept <= first + 8 * MIB
    digest = digest_of(data)
    assert on_s3.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    response = on_s3.patch(
        location, content=data[kept:], headers={"Content-Range": f"{kept}-{len(data) - 1}"}
    )
    assert response.status_code == 202, response.text
    assert on_s3.put(response.headers["Location"], params={"digest": digest}).status_code == 201
    assert on_s3.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True).content == data


def test_a_client_leaving_inside_the_last_part_makes_no_blob(
    on_s3: httpx.Client,
    s3_registry_server: RunningRegistry,
    new_repository: Callable[[], str],
) -> None:
    """A finishing PUT cut inside a part, after a part went whole: no blob under the digest;
    the upload goes on from the size the registry reports and finishes right."""
    repo = new_repository()
    data = os.urandom(26 * MIB + 1)
    digest = digest_of(data)
    location = start_upload(on_s3, repo)
    target = urlsplit(str(on_s3.base_url.join(location)))
    send_and_leave(
        s3_registry_server.url,
        "PUT",
        f"{target.path}?{target.query}&digest={digest}",
        len(data),
        data[: 17 * MIB],
    )
    kept = settled_size(on_s3, location)
    assert kept <= 17 * MIB
    assert on_s3.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    response = on_s3.put(
        location,
        params={"digest": digest},
        content=data[kept:],
        headers={"Content-Range": f"{kept}-{len(data) - 1}"},
    )
    assert response.status_code == 201, response.text
    assert on_s3.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True).content == data


@pytest.mark.parametrize("size", [2 * MIB, 23 * MIB + 1])
def test_a_wrong_digest_makes_no_blob_and_leaves_nothing(
    on_s3: httpx.Client,
    s3_registry_server: RunningRegistry,
    ceph_rgw: CephRGW,
    new_repository: Callable[[], str],
    size: int,
) -> None:
    repo = new_repository()
    data = os.urandom(size)
    claimed = digest_of(data + b"!")
    location = start_upload(on_s3, repo)
    response = on_s3.put(location, params={"digest": claimed}, content=data)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    for digest in (claimed, digest_of(data)):
        assert on_s3.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert on_s3.get(location).status_code == 404
    assert leftovers(s3_registry_server, ceph_rgw, repo) == ([], [])
