"""Signed GET, HEAD and PUT of one small object without boto3's per-call machinery.

A boto3 call builds its request through a chain of events, validates and serialises its
parameters and parses the answer into a dictionary: about 1.1 ms of CPU per call on this
machine, against 0.4 ms for the same request signed with botocore's own SigV4 signer and sent
through botocore's own urllib3 session. The registry's hottest requests (GET of a manifest by
tag, HEAD of a blob) each make two such calls, so they take this path: the link and manifest
reads and the HEAD behind ``stat``; garbage collection's thousands of empty markers take it
too (``put_many``). Everything else keeps boto3.

The calls keep the ``QUICK`` budget and retry rules of clients.py, and fail with the same
botocore exceptions a boto3 call raises (``ClientError`` with the S3 error code, the transport
errors), so errors.translate treats both paths alike.

Only path-style addressing with SigV4 takes this path (``forcepathstyle``, as on Ceph, MinIO
and most S3-compatible servers); virtual-hosted and accelerated endpoints keep boto3's
resolution.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session

from .clients import QUICK, CallBudget, retry_delay
from .errors import TRANSIENT_TRANSPORT, is_transient
from .settings import S3Settings

if TYPE_CHECKING:
    from botocore.credentials import Credentials

_ERROR_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")


@dataclass(frozen=True)
class ObjectHead:
    """What ``stat`` needs of an object."""

    size: int
    modified: float


class LeanReader:
    """GET, HEAD and PUT of small objects in one bucket, signed with SigV4, within one call budget."""

    def __init__(
        self,
        credentials: Credentials,
        settings: S3Settings,
        endpoint_url: str,
        budget: CallBudget = QUICK,
    ) -> None:
        self._auth = S3SigV4Auth(credentials, "s3", settings.region)
        self._base = f"{endpoint_url.rstrip('/')}/{quote(settings.bucket)}/"
        self._budget = budget
        self._headers = {"User-Agent": settings.useragent} if settings.useragent else {}
        # TLS verification as boto3 resolves it: off with skipverify, else AWS_CA_BUNDLE or the
        # default bundle (botocore takes a path there too; the stubs know only a flag).
        verify = False if settings.skipverify else os.environ.get("AWS_CA_BUNDLE") or True
        self._session = URLLib3Session(
            verify=cast("bool", verify),
            # A (connect, read) pair, as botocore's clients pass it; the stubs know only one number.
            timeout=cast("int", (budget.connect, budget.read)),
            max_pool_connections=64,
        )

    @classmethod
    def create(
        cls, credentials: Credentials | None, settings: S3Settings, endpoint_url: str, budget: CallBudget
    ) -> LeanReader | None:
        """A reader for the boto3 clients' endpoint and credentials, or None where this path
        does not apply (not path-style, not SigV4, anonymous)."""
        if not settings.forcepathstyle or not settings.v4auth or settings.accelerate or credentials is None:
            return None
        return cls(credentials, settings, endpoint_url, budget)

    def get(self, key: str) -> bytes:
        """The object's bytes (small objects only: the answer is read whole)."""
        return self._call("GET", key).content

    def put(self, key: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Store a small object, with ``headers`` (``S3Settings.put_headers``)."""
        self._call("PUT", key, body, headers)

    def head(self, key: str) -> ObjectHead:
        response = self._call("HEAD", key)
        modified = response.headers.get("Last-Modified", "")
        return ObjectHead(int(response.headers["Content-Length"]), _http_date(modified))

    def _call(
        self, method: str, key: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> AWSResponse:
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self._send(method, key, body, headers)
            except TRANSIENT_TRANSPORT:
                delay = retry_delay(self._budget, attempts, started)
                if delay is None:
                    raise
            else:
                if response.status_code < 300:
                    return response
                error = _client_error(method, response)
                code, status = error.response["Error"]["Code"], response.status_code
                delay = retry_delay(self._budget, attempts, started) if is_transient(code, status) else None
                if delay is None:
                    raise error
            time.sleep(delay)

    def _send(self, method: str, key: str, body: bytes, headers: Mapping[str, str] | None) -> AWSResponse:
        url = self._base + quote(key, safe="/~")
        request = AWSRequest(method=method, url=url, data=body, headers={**self._headers, **(headers or {})})
        self._auth.add_auth(request)
        return self._session.send(request.prepare())

    def close(self) -> None:
        self._session.close()


def _client_error(method: str, response: AWSResponse) -> ClientError:
    """The ClientError boto3 raises for this answer: the S3 error code from the body, or the
    status alone (a HEAD answer has no body)."""
    found = _ERROR_CODE.search(response.content) if method != "HEAD" else None
    code = found.group(1).decode("ascii", "replace") if found else str(response.status_code)
    parsed: Any = {
        "Error": {"Code": code, "Message": ""},
        "ResponseMetadata": {"HTTPStatusCode": response.status_code},
    }
    return ClientError(parsed, _OPERATIONS[method])


_OPERATIONS = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject"}


def _http_date(value: str) -> float:
    return parsedate_to_datetime(value).timestamp() if value else 0.0
