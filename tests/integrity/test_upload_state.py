"""Upload state lives in storage: any worker continues an upload, and so does a restarted server."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integrity.workers import serving_process
from tests.support.images import digest_of
from tests.support.pushing import error_codes, expect, start_upload
from tests.support.registry import RunningRegistry, StartRegistry

CHUNK = 256 * 1024
ATTEMPTS_PER_CHUNK = 40


def _connection_to_another_worker(
    registry: RunningRegistry, avoid: int | None
) -> tuple[http.client.HTTPConnection, int | None]:
    """A fresh keep-alive connection, served by a worker other than ``avoid`` when one can be had
    within a bounded number of attempts."""
    assert registry.process is not None
    for _ in range(ATTEMPTS_PER_CHUNK):
        connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
        connection.request("GET", "/v2/")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        pid = serving_process(connection, registry.port, registry.process.pid)
        if pid != avoid:
            return connection, pid
        connection.close()
    return connection, avoid


def _request(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
) -> http.client.HTTPResponse:
    connection.request(method, path, body=body, headers={"Content-Length": str(len(body)), **headers})
    response = connection.getresponse()
    response.read()
    return response


def test_chunks_on_different_workers_make_one_verified_blob(
    multi_worker_registry: RunningRegistry, client: httpx.Client
) -> None:
    data = os.urandom(CHUNK * 8 + 1234)
    digest = digest_of(data)
    location = start_upload(client, "integrity/workers")
    path = httpx.URL(location).raw_path.decode()
    served_by: list[int | None] = []
    for offset in range(0, len(data), CHUNK):
        chunk = data[offset : offset + CHUNK]
        connection, pid = _connection_to_another_worker(
            multi_worker_registry, served_by[-1] if served_by else None
        )
        with contextlib.closing(connection):
            headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
            response = _request(connection, "PATCH", path, chunk, headers)
            assert response.status == 202, response.status
            assert response.getheader("Range") == f"0-{offset + len(chunk) - 1}"
            served_by.append(pid)
    connection, finisher = _connection_to_another_worker(multi_worker_registry, served_by[-1])
    with contextlib.closing(connection):
        response = _request(connection, "PUT", f"{path}?digest={digest}", b"", {})
        assert response.status == 201, response.status
        assert response.getheader("Docker-Content-Digest") == digest
    workers = {pid for pid in [*served_by, finisher] if pid is not None}
    assert len(workers) >= 2, f"every request landed on one worker: {served_by} {finisher}"
    blob = expect(client.get(f"/v2/integrity/workers/blobs/{digest}"), 200)
    assert blob.content == data
    assert (
        multi_worker_registry.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    ).read_bytes() == data


def test_out_of_order_chunk_on_another_worker_changes_nothing(client: httpx.Client) -> None:
    data = os.urandom(3 * CHUNK)
    location = start_upload(client, "integrity/order")
    expect(client.patch(location, content=data[:CHUNK], headers={"Content-Range": f"0-{CHUNK - 1}"}), 202)
    for attempt in range(8):  # fresh connections, so several workers see the stale offset
        with httpx.Client(timeout=30) as fresh:
            response = fresh.patch(
                location, content=data[:CHUNK], headers={"Content-Range": f"0-{CHUNK - 1}"}
            )
        assert response.status_code == 416, (attempt, response.text)
        assert response.headers["Range"] == f"0-{CHUNK - 1}"
    status = expect(client.get(location), 204)
    assert status.headers["Range"] == f"0-{CHUNK - 1}"
    response = expect(
        client.put(
            location,
            params={"digest": digest_of(data)},
            content=data[CHUNK:],
            headers={"Content-Range": f"{CHUNK}-{len(data) - 1}"},
        ),
        201,
    )
    assert expect(client.get(response.headers["Location"]), 200).content == data


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_upload_survives_a_server_restart(start_registry: StartRegistry, how: str) -> None:
    registry = start_registry(workers=2)
    data = os.urandom(3 * CHUNK + 7)
    digest = digest_of(data)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        location = start_upload(client, "integrity/restart")
        expect(client.patch(location, content=data[:CHUNK], headers={"Content-Range": f"0-{CHUNK - 1}"}), 202)
    if how == "kill9":
        registry.kill9()
        registry.start()
    else:
        registry.restart()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        status = expect(client.get(location), 204)
        assert status.headers["Range"] == f"0-{CHUNK - 1}"
        response = expect(
            client.patch(
                location,
                content=data[CHUNK : 2 * CHUNK],
                headers={"Content-Range": f"{CHUNK}-{2 * CHUNK - 1}"},
            ),
            202,
        )
        location = response.headers["Location"]
    registry.restart()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        expect(client.put(location, params={"digest": digest}, content=data[2 * CHUNK :]), 201)
        assert expect(client.get(f"/v2/integrity/restart/blobs/{digest}"), 200).content == data
        gone = client.get(location)
        assert gone.status_code == 404
        assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]
    uploads = registry.root / "docker/registry/v2/repositories/integrity/restart/_uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def _resume(client: httpx.Client, location: str, data: bytes) -> None:
    """Continue an upload from the offset the registry reports, finish it, and read the blob back."""
    status = expect(client.get(location), 204)
    received = int(status.headers["Range"].split("-")[1]) + 1 if status.headers["Range"] != "0-0" else 0
    assert 0 <= received <= len(data)
    if received < len(data):
        headers = {"Content-Range": f"{received}-{len(data) - 1}"}
        location = expect(client.patch(location, content=data[received:], headers=headers), 202).headers[
            "Location"
        ]
    response = expect(client.put(location, params={"digest": digest_of(data)}), 201)
    assert expect(client.get(response.headers["Location"]), 200).content == data


def test_chunk_cut_off_by_the_client_resumes_from_the_reported_offset(client: httpx.Client) -> None:
    data = os.urandom(4 * CHUNK)
    location = start_upload(client, "integrity/cut")
    expect(client.patch(location, content=data[:CHUNK], headers={"Content-Range": f"0-{CHUNK - 1}"}), 202)
    url = httpx.URL(location)
    assert url.port is not None
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        head = (
            f"PATCH {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n"
            f"Content-Range: {CHUNK}-{4 * CHUNK - 1}\r\nContent-Length: {3 * CHUNK}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[CHUNK : 2 * CHUNK + 1000])
        time.sleep(0.3)  # the server has read part of the body when the client goes away
    time.sleep(0.3)
    _resume(client, location, data)


def test_kill9_in_the_middle_of_a_chunk_keeps_the_upload_resumable(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=2)
    data = os.urandom(16 * CHUNK)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        location = start_upload(client, "integrity/killed-chunk")
        expect(client.patch(location, content=data[:CHUNK], headers={"Content-Range": f"0-{CHUNK - 1}"}), 202)
    streaming = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for offset in range(CHUNK, len(data), 32 * 1024):
            streaming.set()
            yield data[offset : offset + 32 * 1024]
            time.sleep(0.02)

    def send() -> None:
        with contextlib.suppress(httpx.TransportError), httpx.Client(timeout=60) as sender:
            sender.patch(location, content=slow_body(), headers={"Content-Range": f"{CHUNK}-{len(data) - 1}"})

    sender = threading.Thread(target=send)
    sender.start()
    assert streaming.wait(60)
    time.sleep(0.5)
    registry.kill9()
    sender.join(timeout=60)
    registry.start()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        _resume(client, location, data)
