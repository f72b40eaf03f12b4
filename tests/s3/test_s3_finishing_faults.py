"""S3 failing under a finishing PUT, and a bucket that refuses writes.

A 40 MiB upload's finishing PUT moves its data to the blob with a multipart copy. The gateway
hangs or is killed while that copy is in flight: the PUT answers 503 with the spec's JSON and
``Retry-After`` within 30 s, whatever the driver's own budgets allow; the finishing goes on once
the gateway is back, and the client's retried PUT answers 201 with the blob intact. The registry
reaches the gateway through a relay that stops passing requests on at the copy's first part: the
outage begins there whatever the speed of the copy (a freeze on seeing the copy listed would come
too late for a copy that is already done).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from botocore.exceptions import ClientError

from storage_drivers import StorageFull, StorageReadOnly, StorageUnavailable
from storage_drivers.s3.errors import translate
from tests.s3.faults import CHUNK, PART, SCHEDULING, blob_key, gateway_address, send_chunks, through
from tests.support.ceph import CephRGW
from tests.support.images import digest_of
from tests.support.registry import RunningRegistry, StartRegistry, s3_storage
from tests.support.served import Served
from tests.support.stall import StallingRelay

pytestmark = [pytest.mark.s3, pytest.mark.slow]

MIB = 1 << 20
CEILING = 30.0
"""What clients and proxies wait for an answer."""
FROZEN = 40.0
"""Longer than the ceiling, and than one bulk attempt's read timeout."""
STALL_WAIT = 120.0
"""Bound on waiting for the finishing to reach its copy on a loaded machine (not a timing
assertion)."""


def _uploaded(http: httpx.Client, repo: str, size: int) -> tuple[str, bytes, str]:
    """An upload of ``size`` bytes, every chunk acknowledged; its path, data and digest."""
    data = os.urandom(size)
    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    path = httpx.URL(started.headers["Location"]).path
    send_chunks(http, path, data, 0, size)
    return path, data, digest_of(data)


class _CopyTarget:
    """A relay trigger: the first request that copies a part into the blob ``digest`` names
    (an UploadPartCopy: a PUT with the blob's key and an ``uploadId``)."""

    def __init__(self) -> None:
        self.digest = ""

    def __call__(self, request_line: bytes) -> bool:
        return (
            bool(self.digest)
            and request_line.startswith(b"PUT ")
            and f"/{blob_key(self.digest)}?".encode() in request_line
            and b"uploadId=" in request_line
        )


@pytest.fixture
def relayed(
    start_registry: StartRegistry, own_ceph: CephRGW
) -> Iterator[tuple[RunningRegistry, StallingRelay, _CopyTarget]]:
    """A registry of its own whose S3 requests go through a relay that hangs at the first part
    copy into the blob its trigger names."""
    target = _CopyTarget()
    with StallingRelay(gateway_address(own_ceph), target) as relay:
        registry = start_registry({"storage": through(relay, s3_storage(own_ceph, chunksize=PART))})
        yield registry, relay, target
        registry.stop()


def _finish_cut_by(
    relayed: tuple[RunningRegistry, StallingRelay, _CopyTarget],
    repo: str,
    outage: Callable[[], None],
    recovery: Callable[[], None],
) -> None:
    """``outage`` begins once the relay holds the finishing's first part copy, and lasts past
    the ceiling until ``recovery``."""
    registry, relay, target = relayed
    http = httpx.Client(base_url=registry.url, timeout=120)
    path, data, digest = _uploaded(http, repo, 40 * MIB)
    target.digest = digest
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        finishing = pool.submit(http.put, path, params={"digest": digest})
        try:
            assert relay.stalled.wait(STALL_WAIT), "the finishing never copied a part"
            outage()
            answer = finishing.result()
            elapsed = time.monotonic() - started
            assert elapsed <= CEILING + SCHEDULING, elapsed
            assert answer.status_code == 503, (answer.status_code, answer.text)
            assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert answer.headers["Retry-After"].isdigit()
            time.sleep(max(0.0, FROZEN - elapsed))
        finally:
            recovery()
    # The client retries once the storage answers again; the finishing that went on past its
    # answer may be done by then, or still copying, or have failed: the retry gets 201 in each case.
    deadline = time.monotonic() + 150
    while True:
        retried = http.put(path, params={"digest": digest})
        if retried.status_code == 201 or time.monotonic() > deadline:
            break
        assert retried.status_code == 503, (retried.status_code, retried.text)
        time.sleep(2)
    assert retried.status_code == 201, (retried.status_code, retried.text)
    assert retried.headers["Docker-Content-Digest"] == digest
    with Served(registry.url) as served:
        assert served.verify_blob(repo, digest, len(data)) == len(data)
    assert "Traceback" not in registry.log()
    assert "the pending upload was aborted" not in registry.log()
    http.close()


def test_a_finishing_put_hung_mid_copy_answers_within_the_ceiling(
    relayed: tuple[RunningRegistry, StallingRelay, _CopyTarget], new_repository: Callable[[], str]
) -> None:
    """The gateway hangs (the relay holds the copy's first part and all that follows) until
    it is resumed."""
    _finish_cut_by(relayed, new_repository(), lambda: None, relayed[1].resume)


def test_a_finishing_put_whose_gateway_is_killed_and_restarted(
    relayed: tuple[RunningRegistry, StallingRelay, _CopyTarget],
    own_ceph: CephRGW,
    new_repository: Callable[[], str],
) -> None:
    """The gateway is killed while the relay holds the copy's first part; the relay then passes
    requests on again, to a gateway that is gone until it is started again."""

    def killed() -> None:
        own_ceph.stop_gateway()
        relayed[1].resume()

    _finish_cut_by(relayed, new_repository(), killed, own_ceph.start_gateway)


def test_a_bucket_refusing_writes_answers_storage_read_only(
    own_registry: RunningRegistry, own_ceph: CephRGW, new_repository: Callable[[], str]
) -> None:
    repo = new_repository()
    http = httpx.Client(base_url=own_registry.url, timeout=60)
    stored = os.urandom(MIB)
    response = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(stored)}, content=stored)
    assert response.status_code == 201, response.text
    bucket = own_registry.storage["s3"]["bucket"]
    s3 = own_ceph.client()
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        refused = [
            http.post(f"/v2/{repo}/blobs/uploads/"),
            http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(b"x")}, content=b"x"),
        ]
        for answer in refused:
            assert answer.status_code == 503, (answer.status_code, answer.text)
            assert answer.json()["errors"][0]["code"] == "STORAGE_READ_ONLY"
            assert answer.headers["Retry-After"].isdigit()
        with Served(own_registry.url) as served:  # pulls go on
            assert served.verify_blob(repo, digest_of(stored), len(stored)) == len(stored)
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
    pushed = os.urandom(CHUNK)
    response = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(pushed)}, content=pushed)
    assert response.status_code == 201, response.text
    assert "Traceback" not in own_registry.log()
    http.close()


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "PutObject",
    )


def test_s3_refusals_translate_to_the_storage_conditions() -> None:
    assert isinstance(translate("/a", _client_error("QuotaExceeded", 403)), StorageFull)
    assert isinstance(translate("/a", _client_error("AccessDenied", 403)), StorageReadOnly)
    assert isinstance(translate("/a", _client_error("SlowDown", 503)), StorageUnavailable)


def test_an_upload_s3_completed_while_the_answer_was_lost_is_finished_by_the_retry(
    own_registry: RunningRegistry, own_ceph: CephRGW, new_repository: Callable[[], str]
) -> None:
    """The finishing's complete_multipart_upload landed, and the freeze took its answer (and
    the clean-up after it): the upload's pending state still names a multipart upload that
    is gone, while its data object holds every byte."""
    repo = new_repository()
    http = httpx.Client(base_url=own_registry.url, timeout=60)
    path, data, digest = _uploaded(http, repo, 2 * CHUNK)  # each chunk a part: no pending tail
    bucket = own_registry.storage["s3"]["bucket"]
    upload_key = f"docker/registry/v2/repositories/{repo}/_uploads/{path.rsplit('/', 1)[1]}/data"
    s3 = own_ceph.client()
    (upload,) = s3.list_multipart_uploads(Bucket=bucket, Prefix=upload_key)["Uploads"]
    parts = s3.list_parts(Bucket=bucket, Key=upload_key, UploadId=upload["UploadId"])["Parts"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=upload_key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
    )
    status = http.get(path)
    assert status.status_code == 204, status.text
    assert status.headers["Range"] == f"0-{len(data) - 1}"
    more = http.patch(path, content=b"more", headers={"Content-Range": f"{len(data)}-{len(data) + 3}"})
    assert more.status_code == 416, more.text  # sealed: only the finishing is left
    finished = http.put(path, params={"digest": digest})
    assert finished.status_code == 201, finished.text
    with Served(own_registry.url) as served:
        assert served.verify_blob(repo, digest, len(data)) == len(data)
    assert http.get(path).status_code == 404
    http.close()
