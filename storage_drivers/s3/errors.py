"""botocore's exceptions, translated once into the driver contract's errors.

Transient failures (throttling, 5xx, timeouts, refused connections) have already
been retried with backoff (clients.py) when they reach this module; what is left
becomes StorageUnavailable, which the registry answers with 503 and Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from offload import to_bulk_thread, to_thread

from ..base import InvalidOffset, PathNotFound, StorageError, StorageFull, StorageReadOnly, StorageUnavailable

_T = TypeVar("_T")

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload"})
FULL_CODES = frozenset({"QuotaExceeded"})
"""A user or bucket quota (Ceph RGW, MinIO) refusing what the registry writes."""
REFUSED_CODES = frozenset({"AccessDenied"})
"""A bucket policy (or credentials) denying the call: the registry's writes, in practice, since
a bucket that refuses reads as well serves nothing at all."""
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalError",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
TRANSIENT_TRANSPORT = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def status_code(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_transient(code: str, status: int) -> bool:
    """Whether an S3 error answer may pass: worth a retry, else a 503."""
    return code in TRANSIENT_CODES or status >= 500 or status == 429


def translate(path: str, exc: Exception) -> StorageError:
    """The contract's error for a failed S3 call about ``path``."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ClientError):
        code, status = error_code(exc), status_code(exc)
        if code in NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return PathNotFound(path)
        if code == "InvalidRange" or status == 416:
            return InvalidOffset(path, "range not satisfiable")
        if code in FULL_CODES:
            return StorageFull(path, f"S3 {code}")
        if code in REFUSED_CODES:
            return StorageReadOnly(path, f"S3 {code}")
        if is_transient(code, status):
            return StorageUnavailable(path, f"S3 {code or status}: retries exhausted")
        return StorageError(path, f"S3 {code or status}: {exc}")
    if isinstance(exc, TRANSIENT_TRANSPORT):
        return StorageUnavailable(path, f"S3 unreachable: {exc}")
    return StorageError(path, f"S3: {exc}")


async def in_thread(path: str, call: Callable[[], _T], bulk: bool = False) -> _T:
    """Run a blocking boto3 call in a worker thread, translating its errors. ``bulk``: a call that
    sends or receives an object's data (``offload.to_bulk_thread``)."""
    try:
        return await (to_bulk_thread if bulk else to_thread)(call)
    except (BotoCoreError, ClientError) as exc:
        raise translate(path, exc) from exc
