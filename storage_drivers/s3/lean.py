"""The driver's small-object requests, signed with SigV4 without boto3's per-call machinery.

A boto3 call builds its request through a chain of events, validates and serialises its
parameters and parses the answer into a dictionary: about 1.1 ms of CPU per call on this
machine, against 0.14 ms for the same request signed and sent by signed.py. A pushed layer
makes a score of small requests (the upload's start record, the writer's state, the tail, the
copy into place, the link, the clean-up) and a pull three per blob (link, stat, the read), so
these take this path: GET, HEAD, PUT, DELETE and server-side copy of one object, the GET that
opens a blob read (streamed), listings, DeleteObjects, presigned URLs, and every step of a
multipart upload (starting, parts, copies into parts, completing, aborting, listing its parts
and the bucket's uploads). A worker on this path never imports boto3 nor builds its clients,
whose service model alone costs a process about 10 MiB (bench/S3.md).

``ObjectCalls`` is what the driver and the writer call; ``BotoObjects`` (boto_objects.py,
imported on demand) serves it through boto3 where this path does not apply: only path-style
addressing with SigV4 takes it (``forcepathstyle``, as on Ceph, MinIO and most S3-compatible
servers); virtual-hosted and accelerated endpoints and anonymous access keep boto3's resolution.

The calls keep the budget and retry rules of clients.py, and fail with the same botocore
exceptions a boto3 call raises (``ClientError`` with the S3 error code, the transport errors),
so errors.translate treats both paths alike.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import contextlib
import hashlib
import http.client
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape, unescape

from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from offload import to_thread

from . import listing
from .clients import CallBudget, retry_delay
from .errors import TRANSIENT_TRANSPORT, error_code, is_transient, status_code
from .listing import LIST_PAGE, ListPage, Part, Upload
from .settings import S3Settings
from .signed import Answer, Outgoing, SignedRequests, Stream

if TYPE_CHECKING:
    from botocore.credentials import Credentials

_ERROR_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")
_ERROR = re.compile(rb"<Error>(.*?)</Error>", re.DOTALL)
_ERROR_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_LAST_MODIFIED = re.compile(rb"<LastModified>([^<]{1,64})</LastModified>")
_META = "x-amz-meta-"

_HEADERS = {
    "ContentType": "Content-Type",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "StorageClass": "x-amz-storage-class",
    "ACL": "x-amz-acl",
    "IfNoneMatch": "If-None-Match",
}
"""boto3's names of the PUT arguments the driver uses, as request headers."""


@dataclass(frozen=True)
class ObjectHead:
    """What the driver needs of an object's HEAD."""

    size: int
    modified: float
    etag: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


_DELETE = {"delete": ""}
_UPLOADS = {"uploads": ""}


class Readable(Protocol):
    """A streamed object's bytes: botocore's ``StreamingBody`` or the signed path's ``Stream``;
    both raise botocore's errors when the stream fails."""

    def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class ObjectCalls(Protocol):
    """Requests on single small objects of one bucket (blocking: run them in a thread). ``put``
    and ``copy`` take boto3's put_object arguments (``S3Settings.put_arguments``, ``Metadata``,
    ``IfNoneMatch``)."""

    def get(self, key: str, if_match: str = "") -> bytes: ...

    def open(self, key: str, first: int, end: int | None, if_match: str = "") -> tuple[Readable, str, int]:
        """The object's bytes from ``first`` to ``end`` (exclusive; None: to its end) as a stream
        to read and close, the ETag of the version they come from, and that version's size."""
        ...

    def head(self, key: str) -> ObjectHead: ...

    async def head_async(self, key: str) -> ObjectHead:
        """``head`` without blocking the event loop."""
        ...

    async def get_async(self, key: str) -> bytes:
        """``get`` without blocking the event loop."""
        ...

    def put(self, key: str, body: bytes, arguments: Mapping[str, Any]) -> None: ...

    def copy(self, source: str, key: str, arguments: Mapping[str, Any], if_match: str = "") -> None:
        """Copy ``source`` (the version with ETag ``if_match``, if given) to ``key`` in the bucket
        (up to 5 GiB), with new ``arguments``."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_keys(self, keys: Sequence[str]) -> tuple[str, str] | None:
        """DeleteObjects of up to 1,000 keys: the first (key, code) S3 refused, or None."""
        ...

    def first_modified(self, prefix: str) -> float | None:
        """When the first key below ``prefix`` was last modified; None when there is none."""
        ...

    def list_page(
        self,
        prefix: str,
        *,
        delimited: bool = False,
        after: str = "",
        token: str = "",
        limit: int = LIST_PAGE,
    ) -> ListPage:
        """One ListObjectsV2 page of the keys below ``prefix`` (with ``delimited``, those with a
        "/" after it as common prefixes), after ``after``, from ``token`` on, at most ``limit``."""
        ...

    def list_uploads(self, prefix: str) -> list[Upload]:
        """Every multipart upload under way below ``prefix``."""
        ...

    def create_upload(self, key: str, arguments: Mapping[str, Any]) -> str:
        """Start a multipart upload to ``key`` with boto3's put_object ``arguments``: its id."""
        ...

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        """Upload part ``number`` held in memory (sent as it is, not copied): its ETag."""
        ...

    def copy_part(
        self, source: str, key: str, upload_id: str, number: int, *, if_match: str = "", span: str = ""
    ) -> str:
        """Copy ``source`` (the version with ETag ``if_match``, if given; ``span``: only these
        bytes, as "first-last") into part ``number``: the part's ETag."""
        ...

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """Complete the upload of ``parts`` (number, ETag)."""
        ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def list_parts(self, key: str, upload_id: str) -> list[Part]:
        """Every part stored in the upload, in the order of their numbers."""
        ...

    presigns_inline: bool
    """Whether ``presign`` is quick computation alone, fit for the event loop: no request, no
    credential refresh."""

    def presign(self, key: str, expires: int) -> str:
        """A URL to GET the object, valid for ``expires`` seconds."""
        ...

    def close(self) -> None: ...


class LeanObjects:
    """``ObjectCalls`` as SigV4-signed requests sent through botocore's urllib3 session."""

    def __init__(
        self, credentials: Credentials, settings: S3Settings, endpoint_url: str, budget: CallBudget
    ) -> None:
        self._bucket = settings.bucket
        self._path = f"{urlsplit(endpoint_url).path.rstrip('/')}/{quote(settings.bucket)}/"
        self._base = f"{endpoint_url.rstrip('/')}/{quote(settings.bucket)}/"
        self._budget = budget
        # Refreshable credentials (an instance role, a web identity) may fetch new ones when read.
        self.presigns_inline = not isinstance(credentials, RefreshableCredentials)
        # TLS verification as boto3 resolves it: off with skipverify, else AWS_CA_BUNDLE or the
        # default bundle.
        verify = False if settings.skipverify else os.environ.get("AWS_CA_BUNDLE") or True
        self._requests = SignedRequests(
            endpoint_url,
            credentials,
            settings.region,
            budget,
            verify=verify,
            user_agent=settings.useragent or "",
        )

    @classmethod
    def create(
        cls, credentials: Credentials | None, settings: S3Settings, endpoint_url: str, budget: CallBudget
    ) -> LeanObjects | None:
        """Calls for the boto3 clients' endpoint and credentials, or None where this path does
        not apply (not path-style, not SigV4, anonymous)."""
        if not settings.forcepathstyle or not settings.v4auth or settings.accelerate or credentials is None:
            return None
        return cls(credentials, settings, endpoint_url, budget)

    def get(self, key: str, if_match: str = "") -> bytes:
        return self._call("GET", key, headers={"If-Match": if_match} if if_match else None)[0].body

    def open(self, key: str, first: int, end: int | None, if_match: str = "") -> tuple[Readable, str, int]:
        headers = byte_range(first, end)
        if if_match:
            headers["If-Match"] = if_match
        answer, stream = self._call("GET", key, headers=headers, stream=True)
        assert stream is not None  # a 2xx answer to a streamed GET
        headers_in = answer.headers
        return (
            stream,
            headers_in["ETag"],
            object_size(headers_in.get("Content-Range"), headers_in["Content-Length"]),
        )

    def head(self, key: str) -> ObjectHead:
        return _object_head(self._call("HEAD", key)[0].headers)

    async def head_async(self, key: str) -> ObjectHead:
        return _object_head((await self._call_async("HEAD", key)).headers)

    async def get_async(self, key: str) -> bytes:
        return (await self._call_async("GET", key)).body

    async def _call_async(self, method: str, key: str) -> Answer:
        """``_call`` of a bodiless request without blocking the event loop: the first attempt
        on the loop itself when a kept-alive connection is idle (no thread hop), the rest, when
        there is no such connection or a retry is due, in a worker thread, within one budget."""
        started = time.monotonic()
        path = self._path + quote(key, safe="/~")
        failure: Exception
        try:
            answer = await self._requests.send_on_loop(method, path)
        except TRANSIENT_TRANSPORT as exc:
            failure = exc
        else:
            if answer is None:  # no kept-alive connection: the first attempt goes in a thread
                return await to_thread(self._call_once_more, method, key, started, 0)
            if answer.status < 300:
                return answer
            failure = _client_error(method, answer, answer.status)
            if not is_transient(failure.response["Error"]["Code"], answer.status):
                raise failure
        delay = retry_delay(self._budget, 1, started)
        if delay is None:
            raise failure
        await asyncio.sleep(delay)
        return await to_thread(self._call_once_more, method, key, started, 1)

    def _call_once_more(self, method: str, key: str, started: float, attempts: int) -> Answer:
        return self._call(method, key, started=started, attempts=attempts)[0]

    def put(self, key: str, body: bytes, arguments: Mapping[str, Any]) -> None:
        self._call("PUT", key, body=body, headers=_put_headers(arguments))

    def copy(self, source: str, key: str, arguments: Mapping[str, Any], if_match: str = "") -> None:
        headers = {
            **_put_headers(arguments),
            "x-amz-copy-source": quote(f"{self._bucket}/{source}", safe="/~"),
            "x-amz-metadata-directive": "REPLACE",
        }
        if if_match:
            headers["x-amz-copy-source-if-match"] = if_match
        self._call("PUT", key, headers=headers, copying=True)

    def delete(self, key: str) -> None:
        self._call("DELETE", key)

    def delete_keys(self, keys: Sequence[str]) -> tuple[str, str] | None:
        objects = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in keys)
        body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
        # S3 takes a DeleteObjects body only with its checksum.
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 - S3's choice
        answer = self._call("POST", "", body=body, headers={"Content-MD5": digest}, query=_DELETE)[0].body
        for error in _ERROR.finditer(answer):
            key, code = _ERROR_KEY.search(error.group(1)), _ERROR_CODE.search(error.group(1))
            return (
                unescape(key.group(1).decode()) if key else "",
                code.group(1).decode() if code else "",
            )
        return None

    def first_modified(self, prefix: str) -> float | None:
        query = {"list-type": "2", "max-keys": "1", "prefix": prefix}
        found = _LAST_MODIFIED.search(self._call("GET", "", query=query)[0].body)
        return listing.iso_date(found.group(1).decode()) if found else None

    def list_page(
        self,
        prefix: str,
        *,
        delimited: bool = False,
        after: str = "",
        token: str = "",
        limit: int = LIST_PAGE,
    ) -> ListPage:
        query = {"list-type": "2", "max-keys": str(limit), "prefix": prefix}
        if delimited:
            query["delimiter"] = "/"
        if after:
            query["start-after"] = after
        if token:
            query["continuation-token"] = token
        return listing.list_page(self._call("GET", "", query=query)[0].body)

    def list_uploads(self, prefix: str) -> list[Upload]:
        uploads: list[Upload] = []
        query = {**_UPLOADS, "prefix": prefix}
        while True:
            page, following = listing.uploads_page(self._call("GET", "", query=query)[0].body)
            uploads += page
            if following is None:
                return uploads
            query["key-marker"], query["upload-id-marker"] = following

    def create_upload(self, key: str, arguments: Mapping[str, Any]) -> str:
        answer = self._call("POST", key, headers=_put_headers(arguments), query=_UPLOADS)[0]
        return listing.field(answer.body, "UploadId")

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        query = {"partNumber": str(number), "uploadId": upload_id}
        # http.client sends a bytearray and hashlib hashes it as they would bytes: no copy.
        return self._call("PUT", key, body=cast("bytes", body), query=query)[0].headers["ETag"]

    def copy_part(
        self, source: str, key: str, upload_id: str, number: int, *, if_match: str = "", span: str = ""
    ) -> str:
        headers = {"x-amz-copy-source": quote(f"{self._bucket}/{source}", safe="/~")}
        if if_match:
            headers["x-amz-copy-source-if-match"] = if_match
        if span:
            headers["x-amz-copy-source-range"] = f"bytes={span}"
        query = {"partNumber": str(number), "uploadId": upload_id}
        answer = self._call("PUT", key, headers=headers, query=query, copying=True)[0]
        return listing.field(answer.body, "ETag")

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        # Like a copy, completing may fail after its 200 started: ``copying`` reads the body.
        self._call("POST", key, body=listing.completion(parts), query={"uploadId": upload_id}, copying=True)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._call("DELETE", key, query={"uploadId": upload_id})

    def list_parts(self, key: str, upload_id: str) -> list[Part]:
        parts: list[Part] = []
        query = {"uploadId": upload_id}
        while True:
            page, marker = listing.parts_page(self._call("GET", key, query=query)[0].body)
            parts += page
            if marker is None:
                return sorted(parts, key=lambda part: part.number)
            query["part-number-marker"] = marker

    def start_put(self, key: str, length: int, arguments: Mapping[str, Any]) -> Outgoing:
        """A PUT of ``length`` bytes sent as they arrive (``Outgoing``; its answer from
        ``finished``), with boto3's put_object ``arguments``."""
        return self._start(key, None, _put_headers(arguments), length)

    def start_part(self, key: str, upload_id: str, number: int, length: int) -> Outgoing:
        """An UploadPart of ``length`` bytes sent as they arrive; its ETag from ``finished``."""
        return self._start(key, {"partNumber": str(number), "uploadId": upload_id}, {}, length)

    def send_again(self, start: Callable[[], Outgoing], pieces: Callable[[], Iterable[bytes]]) -> Answer:
        """A streamed request (``start``) whose body ``pieces`` can give again from its first
        byte (a spooled part): sent whole, and sent again on a transient failure within the
        budget, as boto3 retries a part held in memory."""
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                outgoing = start()
                for piece in pieces():
                    self.send(outgoing, piece)
                return self.finished(outgoing)
            except TRANSIENT_TRANSPORT:
                delay = retry_delay(self._budget, attempts, started)
                if delay is None:
                    raise
            except ClientError as exc:
                transient = is_transient(error_code(exc), status_code(exc))
                delay = retry_delay(self._budget, attempts, started) if transient else None
                if delay is None:
                    raise
            time.sleep(delay)

    def _start(
        self, key: str, query: Mapping[str, str] | None, headers: Mapping[str, str], length: int
    ) -> Outgoing:
        """A streamed request, its connection retried within the budget: no byte of its body
        has left yet."""
        path = self._path + quote(key, safe="/~")
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._requests.start("PUT", path, query, headers, length)
            except TRANSIENT_TRANSPORT:
                delay = retry_delay(self._budget, attempts, started)
                if delay is None:
                    raise
            time.sleep(delay)

    @staticmethod
    def send(outgoing: Outgoing, data: memoryview | bytes) -> None:
        """Send on a streamed request's body; a server that refused the request before its end
        raises its error answer, as boto3 would."""
        try:
            outgoing.send(data)
        except TRANSIENT_TRANSPORT:
            answer = outgoing.early_answer
            if answer is not None and answer.status >= 300:
                raise _client_error("PUT", answer, answer.status) from None
            raise

    @staticmethod
    def finished(outgoing: Outgoing) -> Answer:
        """The answer to a streamed PUT, an error answer raised as boto3 raises it (not retried:
        the body is gone)."""
        answer = outgoing.finish()
        if answer.status >= 300:
            raise _client_error("PUT", answer, answer.status)
        return answer

    def presign(self, key: str, expires: int) -> str:
        quoted = quote(key, safe="/~")
        return f"{self._base}{quoted}?{self._requests.presign(self._path + quoted, expires)}"

    def _call(
        self,
        method: str,
        key: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        copying: bool = False,
        stream: bool = False,
        started: float | None = None,
        attempts: int = 0,
    ) -> tuple[Answer, Stream | None]:
        """The answer of a request retried within the budget; with ``stream``, its body to read.
        ``started`` and ``attempts``: of a call whose first attempts were made elsewhere."""
        path = self._path + quote(key, safe="/~")
        started = time.monotonic() if started is None else started
        while True:
            attempts += 1
            try:
                answer, opened = self._requests.send(method, path, query, headers, body, stream=stream)
            except TRANSIENT_TRANSPORT:
                delay = retry_delay(self._budget, attempts, started)
                if delay is None:
                    raise
            else:
                status = answer.status
                # A copy may fail after its 200 started (botocore reads it as a 500 too).
                if status < 300 and not (copying and b"<Error>" in answer.body):
                    return answer, opened
                error = _client_error(method, answer, 500 if status < 300 else status)
                code = error.response["Error"]["Code"]
                transient = is_transient(code, error.response["ResponseMetadata"]["HTTPStatusCode"])
                delay = retry_delay(self._budget, attempts, started) if transient else None
                if delay is None:
                    raise error
            time.sleep(delay)

    def close(self) -> None:
        self._requests.close()


def byte_range(first: int, end: int | None) -> dict[str, str]:
    """The Range header of bytes ``first`` to ``end`` (exclusive; None: to the object's end)."""
    return {"Range": f"bytes={first}-{'' if end is None else end - 1}"}


def object_size(content_range: str | None, content_length: str | int) -> int:
    """The whole object's size from a ranged GET's answer: the total of its ``Content-Range``
    (``bytes 0-99/1234``), or its length where the store sent it all (200)."""
    if content_range:
        return int(content_range.rpartition("/")[2])
    return int(content_length)


def _object_head(headers: http.client.HTTPMessage) -> ObjectHead:
    metadata = {
        name[len(_META) :]: value for name, value in headers.items() if name.lower().startswith(_META)
    }
    return ObjectHead(
        int(headers["Content-Length"]),
        _http_date(headers.get("Last-Modified", "")),
        headers.get("ETag", ""),
        metadata,
    )


def _put_headers(arguments: Mapping[str, Any]) -> dict[str, str]:
    headers = {_HEADERS[name]: str(value) for name, value in arguments.items() if name != "Metadata"}
    headers.update({_META + name: value for name, value in arguments.get("Metadata", {}).items()})
    return headers


def _client_error(method: str, answer: Answer, status: int) -> ClientError:
    """The ClientError boto3 raises for this answer: the S3 error code from the body, or the
    status alone (a HEAD answer has no body)."""
    found = _ERROR_CODE.search(answer.body) if method != "HEAD" else None
    code = found.group(1).decode("ascii", "replace") if found else str(status)
    parsed: Any = {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(parsed, _OPERATIONS.get(method, method))


_OPERATIONS = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}


def _http_date(value: str) -> float:
    """An HTTP date as S3 writes it ("Sun, 06 Dec 2026 04:18:46 GMT"), read in a third of the time
    the email package's general parser takes (every HEAD has one); other forms by that parser."""
    parts = value.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        with contextlib.suppress(ValueError):
            hour, minute, second = (int(field) for field in parts[4].split(":"))
            return float(
                calendar.timegm((int(parts[3]), _MONTHS[parts[2]], int(parts[1]), hour, minute, second))
            )
    return parsedate_to_datetime(value).timestamp() if value else 0.0


_MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}
