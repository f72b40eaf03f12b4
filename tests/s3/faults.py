"""What the S3 fault tests share: the part and chunk sizes their registries use, the budgets
they wait within, the chunked sends they interrupt, and the relay that hangs the gateway at an
exact request."""

from __future__ import annotations

import copy
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from storage_drivers.s3.clients import CallBudget
from tests.support.ceph import CephRGW
from tests.support.stall import StallingRelay

MIB = 1 << 20
PART = 5 * MIB
"""The driver's ``chunksize``: an upload's bytes go to S3 in parts of this size."""
CHUNK = 8 * MIB + 1
OCTETS = {"Content-Type": "application/octet-stream"}
SHORT_BULK = CallBudget(connect=1, read=3, deadline=8)
"""The bulk budget's mechanism at a scale a test can wait for (the real one allows 100 s)."""
SCHEDULING = 3.0
"""Seconds a loaded machine may add to a budget before the answer arrives."""


def blob_key(digest: str) -> str:
    """Where Distribution's layout keeps a blob's bytes (the registry's rootdirectory is empty)."""
    algorithm, hex_digest = digest.split(":")
    return f"docker/registry/v2/blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}/data"


def wait_for_parts(rgw: CephRGW, bucket: str, key: str, count: int, timeout: float = 60) -> None:
    """Wait until the multipart upload at ``key`` has ``count`` parts stored."""
    s3 = rgw.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for upload in s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []):
            parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"]).get("Parts", [])
            if len(parts) >= count:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{key}: fewer than {count} parts after {timeout}s")


def send_chunks(http: httpx.Client, path: str, data: bytes, start: int, end: int) -> None:
    """PATCH ``data[start:end]`` in chunks of CHUNK bytes, each with its Content-Range."""
    for first in range(start, end, CHUNK):
        chunk = data[first : min(first + CHUNK, end)]
        last = first + len(chunk) - 1
        response = http.patch(path, content=chunk, headers={**OCTETS, "Content-Range": f"{first}-{last}"})
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{last}"


def gateway_address(rgw: CephRGW) -> tuple[str, int]:
    """Where ``rgw`` takes S3 requests, for a relay in front of it."""
    endpoint = urlsplit(rgw.endpoint)
    return endpoint.hostname or "", endpoint.port or 80


def through(relay: StallingRelay, storage: dict[str, Any]) -> dict[str, Any]:
    """A copy of the ``storage`` section whose S3 requests go through ``relay``."""
    relayed = copy.deepcopy(storage)
    relayed["s3"]["regionendpoint"] = relay.endpoint
    return relayed


def deletes(request_line: bytes) -> bool:
    """Whether an S3 request line deletes: a DeleteObject or a DeleteObjects batch."""
    return request_line.startswith(b"DELETE ") or (
        request_line.startswith(b"POST ") and b"?delete" in request_line
    )
