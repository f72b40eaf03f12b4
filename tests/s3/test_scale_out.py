"""Stateless replicas: separate registry processes on one bucket, behind nginx round-robin.

An upload's state lives in the bucket only (multipart upload, pending tail, start time), so its
requests may land on any replica in any order; what one replica stores, every other serves at
once. Which replica served each request is proven from nginx's ``$upstream_addr`` log and the
replicas' own access logs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.containers import ContainerTools
from tests.support.images import digest_of, every_blob, random_image, write_oci_layout
from tests.support.nginx import Nginx
from tests.support.pushing import push_content
from tests.support.registry import RunningRegistry
from tests.support.served import Served

from .conftest import landings

pytestmark = [pytest.mark.s3, pytest.mark.nginx]

MIB = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}


def pieces(data: bytes, size: int) -> Iterator[tuple[int, bytes]]:
    for start in range(0, len(data), size):
        yield start, data[start : start + size]


def served_everywhere(replicas: list[RunningRegistry], repo: str, digest: str, size: int) -> None:
    """Each replica, asked directly, serves the blob: the bytes hash to ``digest``."""
    for replica in replicas:
        with Served(replica.url) as served:
            assert served.verify_blob(repo, digest, size) == size, replica.host


def upload_id_of(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    upload_id: str = response.headers["Docker-Upload-UUID"]
    return upload_id


def test_chunked_upload_with_chunks_landing_on_different_replicas(
    balanced: httpx.Client,
    balancer: Nginx,
    replicas: list[RunningRegistry],
    new_repository: Callable[[], str],
) -> None:
    repo = new_repository()
    # 3 MiB + a bit per chunk: S3 parts (10 MiB) are begun by one replica and finished by others,
    # and the unflushed tail is handed from replica to replica through the bucket.
    data = os.urandom(7 * (3 * MIB + 4099))
    started = balanced.post(f"/v2/{repo}/blobs/uploads/")
    upload_id = upload_id_of(started)
    location = started.headers["Location"]
    chunk_count = 0
    for start, chunk in pieces(data, 3 * MIB + 4099):
        response = balanced.patch(
            location, content=chunk, headers={**OCTETS, "Content-Range": f"{start}-{start + len(chunk) - 1}"}
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{start + len(chunk) - 1}"
        location = response.headers["Location"]
        chunk_count += 1
    finished = balanced.put(location, params={"digest": digest_of(data)})
    assert finished.status_code == 201, finished.text
    assert finished.headers["Docker-Content-Digest"] == digest_of(data)

    patches = [x for x in landings(balancer) if x.method == "PATCH" and upload_id in x.uri]
    assert [x.status for x in patches] == [202] * chunk_count
    served_by = [x.upstream for x in patches]
    assert set(served_by) <= {replica.host for replica in replicas}, served_by
    assert len(set(served_by)) >= 2, f"every PATCH went to one replica: {served_by}"
    for replica in replicas:  # each replica's own access log agrees with nginx's
        logged = replica.log().count(f'"PATCH /v2/{repo}/blobs/uploads/{upload_id}" 202')
        assert logged == served_by.count(replica.host), (replica.host, served_by)
    served_everywhere(replicas, repo, digest_of(data), len(data))


def test_each_request_of_an_upload_on_the_next_replica(
    replicas: list[RunningRegistry], new_repository: Callable[[], str]
) -> None:
    """Without nginx: POST, every PATCH, the status checks and the PUT each go to the next
    replica in turn, so no replica sees two requests of the upload in a row."""
    repo = new_repository()
    data = os.urandom(5 * (4 * MIB + 17))
    clients = [httpx.Client(base_url=replica.url, timeout=120) for replica in replicas]
    turn = iter(range(1000))

    def next_replica() -> httpx.Client:
        return clients[next(turn) % len(clients)]

    try:
        started = next_replica().post(f"/v2/{repo}/blobs/uploads/")
        path = httpx.URL(started.headers["Location"]).path
        upload_id = upload_id_of(started)
        for start, chunk in pieces(data, 4 * MIB + 17):
            last = start + len(chunk) - 1
            response = next_replica().patch(
                path, content=chunk, headers={**OCTETS, "Content-Range": f"{start}-{last}"}
            )
            assert response.status_code == 202, response.text
            status = next_replica().get(path)
            assert status.status_code == 204, status.text
            assert status.headers["Range"] == f"0-{last}"
            assert status.headers["Docker-Upload-UUID"] == upload_id
        finished = next_replica().put(path, params={"digest": digest_of(data)})
        assert finished.status_code == 201, finished.text
    finally:
        for client in clients:
            client.close()
    served_everywhere(replicas, repo, digest_of(data), len(data))


def test_monolithic_and_streamed_uploads_through_the_balancer(
    balanced: httpx.Client, replicas: list[RunningRegistry], new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    monolithic = os.urandom(12 * MIB + 5)
    response = balanced.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest_of(monolithic)},
        content=monolithic,
        headers=OCTETS,
    )
    assert response.status_code == 201, response.text

    streamed = os.urandom(23 * MIB + 7)

    def body() -> Iterator[bytes]:  # no Content-Length: sent with chunked transfer encoding
        for _, piece in pieces(streamed, 256 * 1024 + 3):
            yield piece

    started = balanced.post(f"/v2/{repo}/blobs/uploads/")
    location = started.headers["Location"]
    upload_id_of(started)
    response = balanced.patch(location, content=body(), headers=OCTETS)
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{len(streamed) - 1}"
    response = balanced.put(response.headers["Location"], params={"digest": digest_of(streamed)})
    assert response.status_code == 201, response.text

    served_everywhere(replicas, repo, digest_of(monolithic), len(monolithic))
    served_everywhere(replicas, repo, digest_of(streamed), len(streamed))


def test_skopeo_push_through_the_balancer_is_pulled_from_every_replica(
    container_tools: ContainerTools,
    balancer: Nginx,
    replicas: list[RunningRegistry],
    new_repository: Callable[[], str],
    tmp_path: Path,
) -> None:
    image = random_image(layers=3)
    write_oci_layout(tmp_path / "layout", {"v1": image})
    repo = new_repository()
    pushed = f"docker://{balancer.host}/{repo}:v1"
    layout = f"oci:{tmp_path / 'layout'}:v1"
    container_tools.skopeo("copy", "--digestfile", str(tmp_path / "digest"), layout, pushed)
    assert (tmp_path / "digest").read_text() == image.digest

    for number, replica in enumerate(replicas):
        reference = f"docker://{replica.host}/{repo}:v1"
        assert container_tools.skopeo("inspect", "--raw", reference).stdout.encode() == image.manifest.data
        pulled = tmp_path / f"pulled-{number}"
        container_tools.skopeo("copy", reference, f"oci:{pulled}:v1")
        index = json.loads((pulled / "index.json").read_text())
        assert [entry["digest"] for entry in index["manifests"]] == [image.digest]
        for blob in every_blob(image):
            stored = pulled / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
            assert stored.read_bytes() == blob.data, (replica.host, blob.digest)


def test_what_one_replica_changes_every_other_sees_at_once(
    replicas: list[RunningRegistry], new_repository: Callable[[], str]
) -> None:
    """Push through the first replica, read through the others right away; delete the tag
    through the last, and the first no longer serves it."""
    image = random_image(layers=2)
    repo = new_repository()
    first, *others = replicas
    with httpx.Client(base_url=first.url, timeout=60) as http:
        push_content(http, repo, "v1", image)
    for replica in others:
        with Served(replica.url) as served:
            assert served.manifest(repo, "v1").data == image.manifest.data
            assert set(served.verify_tree(repo, "v1")) == {b.digest for b in every_blob(image)}
            assert served.tags(repo) == ["v1"]
    with httpx.Client(timeout=60) as http:
        response = http.delete(f"{others[-1].url}/v2/{repo}/manifests/{image.digest}")
        assert response.status_code == 202, response.text
        for replica in replicas:
            response = http.get(f"{replica.url}/v2/{repo}/manifests/v1")
            assert response.status_code == 404, (replica.host, response.text)
