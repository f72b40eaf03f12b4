"""Many clients pushing the same blob or the same tag at once all succeed with one consistent result."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx

from tests.integrity.layout import check_layout
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.pushing import expect, image_manifest, push_blob, push_manifest, start_upload
from tests.support.registry import RunningRegistry

CLIENTS = 16
T = TypeVar("T")


def _together(count: int, action: Callable[[int, httpx.Client], T], url: str) -> list[T]:
    """Run ``action`` in ``count`` threads, each with its own connection, released at one moment."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        with httpx.Client(base_url=url, timeout=120) as client:
            barrier.wait(timeout=60)
            return action(index, client)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_sixteen_clients_push_the_same_blob(multi_worker_registry: RunningRegistry) -> None:
    name = "integrity/same-blob"
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = digest_of(data)
    chunk = 1024 * 1024

    def push(index: int, client: httpx.Client) -> tuple[int, str]:
        if index % 2:  # half monolithic, half chunked, all racing to create the same blob
            response = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
            return response.status_code, response.headers.get("Docker-Content-Digest", "")
        location = start_upload(client, name)
        for offset in range(0, len(data), chunk):
            part = data[offset : offset + chunk]
            headers = {"Content-Range": f"{offset}-{offset + len(part) - 1}"}
            location = expect(client.patch(location, content=part, headers=headers), 202).headers["Location"]
        response = client.put(location, params={"digest": digest})
        return response.status_code, response.headers.get("Docker-Content-Digest", "")

    results = _together(CLIENTS, push, multi_worker_registry.url)
    assert results == [(201, digest)] * CLIENTS
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as client:
        blob = expect(client.get(f"/v2/{name}/blobs/{digest}"), 200)
        assert blob.content == data
        assert blob.headers["Content-Length"] == str(len(data))
    report = check_layout(multi_worker_registry.root)
    assert report.problems == []
    assert (name, digest) in report.layers
    blob_dir = multi_worker_registry.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:]
    assert [p.name for p in blob_dir.iterdir()] == ["data"]  # one file, no leftovers of the race
    uploads = multi_worker_registry.root / "docker/registry/v2/repositories" / name / "_uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_many_clients_push_different_manifests_to_one_tag(multi_worker_registry: RunningRegistry) -> None:
    name = "integrity/same-tag"
    config = os.urandom(128)
    layers = [os.urandom(2048) for _ in range(CLIENTS)]
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as client:
        for blob in [config, *layers]:
            push_blob(client, name, blob)
    manifests = [image_manifest(config, [layer]) for layer in layers]
    digests = {digest_of(m) for m in manifests}

    def push(index: int, client: httpx.Client) -> tuple[int, str]:
        response = client.put(
            f"/v2/{name}/manifests/latest", content=manifests[index], headers={"Content-Type": OCI_MANIFEST}
        )
        return response.status_code, response.headers.get("Docker-Content-Digest", "")

    results = _together(CLIENTS, push, multi_worker_registry.url)
    assert sorted(results) == sorted((201, digest_of(m)) for m in manifests)
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as client:
        tagged = expect(client.get(f"/v2/{name}/manifests/latest"), 200)
        assert digest_of(tagged.content) == tagged.headers["Docker-Content-Digest"]
        assert tagged.headers["Docker-Content-Digest"] in digests
        for manifest in manifests:  # every push left its revision readable by digest
            assert expect(client.get(f"/v2/{name}/manifests/{digest_of(manifest)}"), 200).content == manifest
        assert expect(client.get(f"/v2/{name}/tags/list"), 200).json() == {"name": name, "tags": ["latest"]}
    report = check_layout(multi_worker_registry.root)
    assert report.problems == []
    assert report.tags[(name, "latest")] == tagged.headers["Docker-Content-Digest"]


def test_readers_of_a_tag_being_moved_always_get_a_whole_manifest(
    multi_worker_registry: RunningRegistry,
) -> None:
    """Writers flip a tag between two manifests while readers fetch it: every read is one of the two,
    complete; never a 404, a 5xx or a torn link."""
    name = "integrity/flip"
    config, first, second = os.urandom(64), os.urandom(512), os.urandom(512)
    manifests = [image_manifest(config, [first]), image_manifest(config, [second])]
    expected = {digest_of(m): m for m in manifests}
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as client:
        for blob in (config, first, second):
            push_blob(client, name, blob)
        expect(
            client.put(
                f"/v2/{name}/manifests/flip", content=manifests[0], headers={"Content-Type": OCI_MANIFEST}
            ),
            201,
        )
    writes_per_writer = 40
    done = threading.Event()

    def work(index: int, client: httpx.Client) -> list[str]:
        problems = []
        if index < 4:
            for round_ in range(writes_per_writer):
                body = manifests[(index + round_) % 2]
                response = client.put(
                    f"/v2/{name}/manifests/flip", content=body, headers={"Content-Type": OCI_MANIFEST}
                )
                if response.status_code != 201:
                    problems.append(f"write {response.status_code}")
            done.set()
            return problems
        while not done.is_set():
            response = client.get(f"/v2/{name}/manifests/flip")
            if (
                response.status_code != 200
                or expected.get(response.headers.get("Docker-Content-Digest", "")) != response.content
            ):
                problems.append(f"read {response.status_code} {response.content[:80]!r}")
        return problems

    results = _together(12, work, multi_worker_registry.url)
    assert [p for problems in results for p in problems] == []


def test_tag_pushed_and_deleted_concurrently_never_fails_the_server(
    multi_worker_registry: RunningRegistry,
) -> None:
    """Pushes, tag deletes and reads of one tag race: every answer is a success or a clean 404."""
    name = "integrity/churn"
    config, layer = os.urandom(64), os.urandom(512)
    manifest = image_manifest(config, [layer])
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as client:
        push_blob(client, name, config)
        push_blob(client, name, layer)
    rounds = 60

    def work(index: int, client: httpx.Client) -> list[str]:
        unexpected = []
        for _ in range(rounds):
            if index % 3 == 0:
                response = client.put(
                    f"/v2/{name}/manifests/churn", content=manifest, headers={"Content-Type": OCI_MANIFEST}
                )
                allowed = {201}
            elif index % 3 == 1:
                response = client.delete(f"/v2/{name}/manifests/churn")
                allowed = {202, 404}
            else:
                response = client.get(f"/v2/{name}/manifests/churn")
                allowed = {200, 404}
            if response.status_code not in allowed:
                unexpected.append(f"{response.request.method} {response.status_code} {response.text[:200]}")
        return unexpected

    results = _together(9, work, multi_worker_registry.url)
    assert [problem for problems in results for problem in problems] == []
    with httpx.Client(base_url=multi_worker_registry.url, timeout=60) as client:
        push_manifest(client, name, "churn", manifest, OCI_MANIFEST)
        assert expect(client.get(f"/v2/{name}/manifests/churn"), 200).content == manifest
    assert check_layout(multi_worker_registry.root).problems == []
