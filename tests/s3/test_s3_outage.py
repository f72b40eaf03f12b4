"""The S3 server stops in the middle of a push, then comes back; the S3 server hangs, then wakes.

A Ceph of its own (stopping the session's would disturb other tests): radosgw is stopped while
the body of a chunk is on its way, the cluster behind it keeps running. While it is away every
request that needs storage is answered 503 UNAVAILABLE with ``Retry-After``: never 201 for a blob
or manifest that did not land, never 500. When it is back the client asks where the upload
stands, sends the rest, and finishes; the blob's bytes hash to its digest and nothing that was
refused is visible.

A hung radosgw (SIGSTOP: connections are taken, nothing is answered) fails small calls, and the
registry requests made of them, within the driver's quick budget, and part uploads within their
bulk budget; after SIGCONT everything works again and the interrupted upload finishes intact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio.from_thread
import httpx
import pytest

from storage_drivers import StorageUnavailable
from storage_drivers.s3 import S3Driver, parse_settings
from storage_drivers.s3.clients import QUICK
from storage_drivers.testsuite import pattern, read_all
from tests.s3.faults import (
    CHUNK,
    MIB,
    OCTETS,
    PART,
    SHORT_BULK,
    blob_key,
    send_chunks,
    wait_for_parts,
)
from tests.support.ceph import CephRGW
from tests.support.images import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Blob,
    digest_of,
    json_bytes,
    random_image,
)
from tests.support.pushing import push_content
from tests.support.registry import RunningRegistry
from tests.support.served import Served

pytestmark = [pytest.mark.s3, pytest.mark.slow]

FROZEN_SLACK = 8.0
"""Seconds a loaded machine may add to a call's budget while the gateway is frozen: the probes
start together, and a dozen threads, the registry's workers and the test share the cores. It
stays below what tells a budget kept from one whose deadline is ignored: a quick call retried
to its last attempt takes ``QUICK.attempts * QUICK.read`` seconds (25), out of bounds."""


def stored_parts(rgw: CephRGW, bucket: str, key: str) -> list[int]:
    """The sizes of the parts S3 holds for the multipart upload at ``key``."""
    s3 = rgw.client()
    (upload,) = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]
    return [
        part["Size"] for part in s3.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])["Parts"]
    ]


def assert_unavailable(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 503, (where, response.status_code, response.text)
    assert response.headers["Retry-After"].isdigit(), (where, response.headers)
    if response.request.method != "HEAD":
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE", (where, response.text)


def test_radosgw_stopped_mid_push(
    own_registry: RunningRegistry, own_ceph: CephRGW, new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    data = os.urandom(6 * CHUNK)
    digest = digest_of(data)
    other = os.urandom(MIB)
    image = random_image(layers=1)
    http = httpx.Client(base_url=own_registry.url, timeout=300)
    for blob in image.blobs:  # so that only the outage can refuse its manifest
        response = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data)
        assert response.status_code == 201, response.text

    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    path = httpx.URL(started.headers["Location"]).path
    bucket = own_registry.storage["s3"]["bucket"]
    upload_key = (
        f"docker/registry/v2/repositories/{repo}/_uploads/{started.headers['Docker-Upload-UUID']}/data"
    )
    acknowledged = 2 * CHUNK
    send_chunks(http, path, data, 0, acknowledged)
    parts_before = len(stored_parts(own_ceph, bucket, upload_key))

    def chunk_cut_by_the_outage() -> Iterator[bytes]:
        """The third chunk, of unannounced length (so gathered into parts of PART bytes): radosgw
        stops once the S3 part its first bytes complete is stored, before the registry records
        that part (the registry holds the chunk's last bytes)."""
        chunk = data[acknowledged : acknowledged + CHUNK]
        yield chunk[: 8 * MIB]
        wait_for_parts(own_ceph, bucket, upload_key, parts_before + 1)
        own_ceph.stop_gateway()
        yield chunk[8 * MIB :]

    try:
        response = http.patch(
            path,
            content=chunk_cut_by_the_outage(),
            headers={**OCTETS, "Content-Range": f"{acknowledged}-{acknowledged + CHUNK - 1}"},
        )
        assert_unavailable(response)

        # While radosgw is away: every request that needs storage, at once (each takes the
        # driver's retries with backoff before it gives up).
        probes: list[Callable[[], httpx.Response]] = [
            lambda: http.get(path),
            lambda: http.patch(path, content=data[acknowledged:], headers=OCTETS),
            lambda: http.put(path, params={"digest": digest}, content=data[acknowledged:], headers=OCTETS),
            lambda: http.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(other)}, content=other
            ),
            lambda: http.post(f"/v2/{repo}/blobs/uploads/"),
            lambda: http.put(
                f"/v2/{repo}/manifests/during-outage",
                content=image.manifest.data,
                headers={"Content-Type": image.manifest.media_type},
            ),
            lambda: http.head(f"/v2/{repo}/blobs/{digest}"),
            lambda: http.get(f"/v2/{repo}/tags/list"),
            lambda: http.get("/readyz"),
        ]
        with ThreadPoolExecutor(len(probes)) as pool:
            answers = list(pool.map(lambda probe: probe(), probes))
        for answer in answers[:-1]:
            assert_unavailable(answer)
        assert answers[-1].status_code == 503, answers[-1].text
    finally:
        own_ceph.start_gateway()

    # The client asks where the upload stands and sends the rest from there.
    status = http.get(path)
    assert status.status_code == 204, status.text
    stored = int(status.headers["Range"].split("-")[1]) + 1
    parts = stored_parts(own_ceph, bucket, upload_key)
    assert len(parts) == parts_before + 1
    assert stored == sum(parts) > acknowledged, "the part stored during the outage counts, exactly"
    send_chunks(http, path, data, stored, len(data))
    finished = http.put(path, params={"digest": digest})
    assert finished.status_code == 201, finished.text

    # The blob verifies through the registry and in the bucket; what was refused is absent.
    with Served(own_registry.url) as served:
        assert served.verify_blob(repo, digest, len(data)) == len(data)
    s3 = own_ceph.client()
    assert digest_of(s3.get_object(Bucket=bucket, Key=blob_key(digest))["Body"].read()) == digest
    assert http.head(f"/v2/{repo}/blobs/{digest_of(other)}").status_code == 404
    assert s3.list_objects_v2(Bucket=bucket, Prefix=blob_key(digest_of(other)))["KeyCount"] == 0
    assert http.get(f"/v2/{repo}/manifests/during-outage").status_code == 404

    # An image with the finished blob as its layer is pushed and served whole; its tag is the
    # repository's only one.
    config = Blob(
        OCI_CONFIG, json_bytes({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    )
    response = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": config.digest}, content=config.data)
    assert response.status_code == 201, response.text
    layer = {"mediaType": OCI_LAYER, "digest": digest, "size": len(data)}
    manifest = json_bytes(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(), "layers": [layer]}
    )
    response = http.put(f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    with Served(own_registry.url) as served:
        assert served.tags(repo) == ["v1"]
        assert set(served.verify_tree(repo, "v1")) == {digest_of(manifest), config.digest, digest}
    http.close()


def timed(probe: Callable[[], object]) -> tuple[float, object]:
    """How long ``probe`` took, and what it returned or raised."""
    started = time.monotonic()
    try:
        outcome = probe()
    except Exception as exc:
        outcome = exc
    return time.monotonic() - started, outcome


def test_radosgw_frozen(
    own_registry: RunningRegistry, own_ceph: CephRGW, new_repository: Callable[[], str]
) -> None:
    repo, image = new_repository(), random_image(layers=1)
    url = own_registry.url
    http = httpx.Client(base_url=url, timeout=60)
    push_content(http, repo, "v1", image)
    layer = image.layers[0].blob.digest
    bucket = own_registry.storage["s3"]["bucket"]
    settings = parse_settings(own_ceph.driver_parameters(bucket, rootdirectory="/frozen", chunksize=PART))
    data = pattern(16 * MIB, 1)

    with anyio.from_thread.start_blocking_portal() as portal:
        driver, bulk_driver = S3Driver(settings), S3Driver(settings, bulk=SHORT_BULK)
        portal.call(driver.put_content, "/small", b"before")
        writer = portal.call(bulk_driver.writer, "/upload/data")
        portal.call(writer.write, data[: 6 * MIB])
        portal.call(writer.close)  # part 1 (5 MiB) and a pending 1 MiB tail
        writer = portal.call(bulk_driver.writer, "/upload/data", True)
        portal.call(writer.write, data[6 * MIB : 7 * MIB])  # the tail read back: 2 MiB held
        quick_probes: dict[str, Callable[[], object]] = {
            "driver stat": lambda: portal.call(driver.stat, "/small"),
            "driver get": lambda: portal.call(driver.get_content, "/small"),
            "driver put": lambda: portal.call(driver.put_content, "/small", b"during"),
            "driver list": lambda: portal.call(driver.list, "/upload"),
            "HEAD blob": lambda: httpx.head(f"{url}/v2/{repo}/blobs/{layer}", timeout=120),
            "GET tags": lambda: httpx.get(f"{url}/v2/{repo}/tags/list", timeout=120),
            "GET manifest": lambda: httpx.get(f"{url}/v2/{repo}/manifests/v1", timeout=120),
        }
        # This write completes part 2 (the old tail and 4 MiB), due within SHORT_BULK.
        part_upload = lambda: portal.call(writer.write, data[7 * MIB : 10 * MIB])  # noqa: E731
        own_ceph.freeze_gateway()
        try:
            with ThreadPoolExecutor(len(quick_probes) + 1) as pool:
                part_outcome = pool.submit(timed, part_upload)
                outcomes = dict(zip(quick_probes, pool.map(timed, quick_probes.values()), strict=True))
                part_elapsed, part_error = part_outcome.result()
        finally:
            own_ceph.thaw_gateway()

        assert QUICK.deadline + FROZEN_SLACK < QUICK.attempts * QUICK.read  # the bound still tells
        for name, (elapsed, outcome) in outcomes.items():
            # At least one read timeout: the server hung rather than refused.
            assert QUICK.read <= elapsed <= QUICK.deadline + FROZEN_SLACK, (name, elapsed, outcome)
            if isinstance(outcome, httpx.Response):
                assert_unavailable(outcome)
            else:
                assert isinstance(outcome, StorageUnavailable), (name, outcome)
        assert isinstance(part_error, StorageUnavailable), part_error
        assert part_elapsed <= SHORT_BULK.deadline + FROZEN_SLACK, part_elapsed

        # Awake again: the registry answers, and so does the driver.
        assert http.head(f"/v2/{repo}/blobs/{layer}").status_code == 200
        with Served(url) as served:
            assert served.tags(repo) == ["v1"]
            assert set(served.verify_tree(repo, "v1")) == {
                blob.digest for blob in [image.manifest, *image.blobs]
            }
        # (Another key: the PUT refused while frozen may still land once radosgw wakes up.)
        portal.call(driver.put_content, "/after", b"after")
        assert portal.call(driver.get_content, "/after") == b"after"
        # The interrupted upload continues where the stored state says (the refused part may
        # have landed once radosgw woke up: either way the size tells) and ends intact.
        resumed = portal.call(bulk_driver.writer, "/upload/data", True)
        assert resumed.size in {6 * MIB, 10 * MIB}, resumed.size
        portal.call(resumed.write, data[resumed.size :])
        portal.call(resumed.commit)
        assert portal.call(read_all, driver, "/upload/data") == data
        portal.call(driver.close)
        portal.call(bulk_driver.close)
    http.close()
