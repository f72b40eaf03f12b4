"""SigV4-signed HTTP/1.1 requests to one S3 endpoint, on ``http.client`` connections.

The driver's small requests (lean.py) go through here rather than through botocore's request
objects, signer and urllib3 pool: on this machine a HEAD costs about 0.14 ms of CPU this way
against 0.4 ms through botocore's own pieces, and a small PUT leaves in one segment (headers and
body in one send) where urllib3's two sends waited up to 40 ms on the peer's delayed ACK.

Requests are sent from worker threads (``send``), except over plain HTTP a bodiless GET or HEAD
that finds a kept-alive connection idle (``send_on_loop``) and the body of a streamed GET
(``Stream.receive``): those are written and read on the event loop (exchange.py), without the
thread hop whose two wake-ups cost more CPU than the request itself (a GET or HEAD of a link:
0.32 ms of CPU on the loop against 0.48 ms through a thread, on this machine under load).

Signing follows AWS Signature Version 4 for S3 with path-style URLs: the canonical URI is the
path as sent, the payload is hashed over plain HTTP and declared ``UNSIGNED-PAYLOAD`` over TLS
(botocore's choice for S3), and every header sent but the user agent is signed. Failures raise
botocore's own exceptions, as botocore's urllib3 session does, so the driver's retry rules and
error translation treat both paths alike.
"""

from __future__ import annotations

import asyncio
import contextlib

# The socket module encodes host names with this codec: imported with the worker, not by its first
# connection to S3 in the middle of a request (1 to 3 ms).
import encodings.idna  # noqa: F401
import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
)
from botocore.httpsession import get_cert_path

from .exchange import ClosedUnused, MalformedAnswer, exchange, readable

if TYPE_CHECKING:
    from botocore.credentials import Credentials

    from .clients import CallBudget

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED = "UNSIGNED-PAYLOAD"
_EARLY_ANSWER_WAIT = 1.0
"""Seconds a streamed request whose sending failed waits for the answer that may explain it."""
_IDLE_CONNECTIONS = 64
"""Keep-alive connections kept per endpoint and budget, as boto3's pool keeps."""
_EARLY_READ = 64 << 10
"""The most a streamed answer's first read takes in the worker thread that sent the request."""


class Answer:
    """An S3 answer: status, headers (case-insensitive) and the whole body (empty for a HEAD or
    a streamed answer)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class Stream:
    """The body of a streamed answer. A stream cut short or stalled raises botocore's errors (as
    botocore's ``StreamingBody`` does); one read to its end gives its connection back for reuse.

    Over plain HTTP it is read on the event loop (``receive``): the socket is made non-blocking
    and read as its bytes arrive, with no thread hop per piece (each hop woke a worker thread and
    then the event loop: most of a pull's CPU above the copying itself). Over TLS it is read in a
    worker thread (``read``): a non-blocking TLS socket hands out one 16 KiB record per call.
    """

    def __init__(
        self,
        pool: SignedRequests,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        sock: socket.socket,
        length: int,
    ) -> None:
        self._pool, self._response = pool, response
        self._connection: http.client.HTTPConnection | None = connection
        # The socket the request went on: an answer with "Connection: close" makes the connection
        # let go of it (``connection.sock`` None) while the response still reads from it.
        self._socket = sock
        self._left = length
        self.on_loop = not pool.tls
        """Whether ``receive`` reads it; else ``read``, in a worker thread."""
        self._early = b""
        if self.on_loop and length:
            # What http.client buffered past the headers, taken while still in the worker thread
            # (at most one read of the socket): ``receive`` reads the socket alone.
            self._early = self._guarded(lambda: response.fp.read1(min(length, _EARLY_READ)))

    def read(self, size: int) -> bytes:
        """Up to ``size`` next bytes, blocking (b"" at the end)."""
        if self._early:  # a plain-HTTP stream read in a thread (the writer re-reading a tail)
            early, self._early = self._early[:size], self._early[size:]
            return self._count(early)
        if self._left <= 0:
            return b""
        return self._count(self._guarded(lambda: self._response.read(min(size, self._left))))

    async def receive(self, size: int) -> bytes:
        """Up to ``size`` next bytes as they arrive, read on the running event loop (b"" at the
        end); a stream with ``on_loop`` only."""
        if self._early:
            early, self._early = self._early, b""
            return self._count(early)
        if self._left <= 0:
            return b""
        sock = self._socket
        if sock.gettimeout() != 0.0:  # once: _exchange sets the timeouts back before the next request
            sock.setblocking(False)
        while True:
            try:
                return self._count(sock.recv(min(size, self._left)))
            except BlockingIOError:
                await self._readable(sock)
            except OSError as exc:
                self.close()
                raise ConnectionClosedError(endpoint_url=self._pool.endpoint) from exc

    async def _readable(self, sock: socket.socket) -> None:
        """Until ``sock`` has bytes to read, or the budget's read timeout passes."""
        try:
            async with asyncio.timeout(self._pool.read_timeout):
                await readable(sock)
        except TimeoutError as exc:
            self.close()
            raise ReadTimeoutError(endpoint_url=self._pool.endpoint, error=exc) from exc

    def _guarded(self, read: Callable[[], bytes]) -> bytes:
        """``read()``, its failures raised as botocore's."""
        try:
            return read()
        except TimeoutError as exc:
            self.close()
            raise ReadTimeoutError(endpoint_url=self._pool.endpoint, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ConnectionClosedError(endpoint_url=self._pool.endpoint) from exc

    def _count(self, chunk: bytes) -> bytes:
        if not chunk:
            left = self._left
            self.close()
            raise IncompleteReadError(actual_bytes=0, expected_bytes=left)
        self._left -= len(chunk)
        if self._left == 0:
            self.close()
        return chunk

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._response.close()  # the connection takes a request again only once it is
            if self._left == 0:
                self._pool.release(connection)
            else:
                connection.close()  # unread bytes: the connection cannot carry another request


class Outgoing:
    """A request under way whose body is sent as it arrives: ``send`` exactly the declared length
    in all, then ``finish`` for the answer. Nothing is kept to send again: a failure (raised as
    botocore's errors) or ``abandon`` closes the connection, and the server drops the request."""

    def __init__(self, pool: SignedRequests, connection: http.client.HTTPConnection, length: int) -> None:
        self._pool, self._connection = pool, connection
        self.left = length
        """Body bytes still to send."""
        self.early_answer: Answer | None = None
        """What the server answered before the body's end, when it refused the request so."""

    def send(self, data: memoryview | bytes) -> None:
        if len(data) > self.left:
            self.abandon()
            raise ValueError(f"{len(data)} bytes sent where {self.left} were left")
        try:
            # As urllib3 waits: ``connect`` for the server to take each piece.
            self._connection.sock.sendall(data)
        except (OSError, http.client.HTTPException) as exc:
            self.early_answer = self._answer_sent_early()
            self.abandon()
            raise _sending_error(self._pool.endpoint, exc) from exc
        except BaseException:
            self.abandon()
            raise
        self.left -= len(data)

    def finish(self) -> Answer:
        """The server's answer, once every byte was sent; the connection is kept for reuse."""
        if self.left:
            self.abandon()
            raise ValueError(f"{self.left} bytes of the body were never sent")
        connection = self._connection
        try:
            connection.sock.settimeout(self._pool.budget.read)
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.abandon()
            raise _sending_error(self._pool.endpoint, exc) from exc
        except BaseException:
            self.abandon()
            raise
        self._pool.release(connection)
        return Answer(response.status, response.headers, content)

    def _answer_sent_early(self) -> Answer | None:
        """The answer a server sends before closing on a request it refuses without reading
        its body (an unknown upload, a quota, a denial), if it can still be read."""
        with contextlib.suppress(OSError, http.client.HTTPException):
            self._connection.sock.settimeout(_EARLY_ANSWER_WAIT)
            response = self._connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        return None

    def abandon(self) -> None:
        """Give up the request: the server sees its connection close before the body's end."""
        self._connection.close()


def _sending_error(endpoint: str, exc: OSError | http.client.HTTPException) -> Exception:
    """botocore's error for a failure while a streamed request is sent or answered."""
    if isinstance(exc, TimeoutError):
        return ReadTimeoutError(endpoint_url=endpoint, error=exc)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return ConnectionClosedError(endpoint_url=endpoint)
    return HTTPClientError(error=exc)


class SignedRequests:
    """Signed requests to ``endpoint`` (``http[s]://host[:port]``) within ``budget``'s timeouts;
    blocking, safe to call from many threads at once."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        region: str,
        budget: CallBudget,
        *,
        verify: bool | str,
        user_agent: str = "",
    ) -> None:
        parts = urlsplit(endpoint)
        self.endpoint = endpoint
        self.tls = parts.scheme == "https"
        self.read_timeout = budget.read
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self.tls else 80)
        self._host_header = parts.netloc
        # The Host a client following a presigned URL sends: without a default port.
        self._url_host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != (443 if self.tls else 80):
            self._url_host += f":{parts.port}"
        self._credentials, self._region = credentials, region
        self.budget = budget
        self._user_agent = user_agent
        self._context: ssl.SSLContext | None = None
        if self.tls:
            if verify is False:
                self._context = ssl._create_unverified_context()  # noqa: S323 - skipverify asks for it
            else:
                # The bundle boto3 trusts: AWS_CA_BUNDLE's path, else botocore's default one.
                bundle = verify if isinstance(verify, str) else get_cert_path(True)
                self._context = ssl.create_default_context(cafile=bundle)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._keys: tuple[str, str, bytes] = ("", "", b"")  # (secret, day, signing key)

    def send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        stream: bool = False,
    ) -> tuple[Answer, Stream | None]:
        """One attempt of a request on ``path`` (already quoted); with ``stream``, a 2xx answer's
        body is left to read from the returned ``Stream``."""
        target, canonical_query = self._target(path, query)
        signed = self._sign(method, path, canonical_query, headers or {}, body)
        if self._user_agent:
            signed["User-Agent"] = self._user_agent
        while True:
            connection = self._connection()
            fresh = connection.sock is None
            if fresh:
                self._open(connection)
            sock = connection.sock
            try:
                response = self._exchange(connection, method, target, signed, body)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
                connection.close()
                if not fresh:
                    continue  # a kept-alive connection the server had closed: once more on a new one
                raise ConnectionClosedError(endpoint_url=self.endpoint) from exc
            except TimeoutError as exc:
                connection.close()
                raise ReadTimeoutError(endpoint_url=self.endpoint, error=exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise HTTPClientError(error=exc) from exc
            break
        if stream and 200 <= response.status < 300 and method != "HEAD":
            length = int(response.headers.get("Content-Length", "0"))
            streamed = Stream(self, connection, response, sock, length)
            return Answer(response.status, response.headers, b""), streamed
        try:
            content = response.read()
        except TimeoutError as exc:
            connection.close()
            raise ReadTimeoutError(endpoint_url=self.endpoint, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ConnectionClosedError(endpoint_url=self.endpoint) from exc
        self.release(connection)  # closed already if the server said so: it reopens when next used
        return Answer(response.status, response.headers, content), None

    def start(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        length: int,
    ) -> Outgoing:
        """A request whose body of ``length`` bytes the caller sends piece by piece as it arrives
        (``Outgoing``). Its payload is declared unsigned, since its hash is not known before its
        bytes. It goes on a new connection: a kept-alive one the server had closed would fail
        only once body bytes were sent, and those cannot be sent again."""
        target, canonical_query = self._target(path, query)
        signed = self._sign(method, path, canonical_query, headers, b"", unsigned=True)
        if self._user_agent:
            signed["User-Agent"] = self._user_agent
        signed["Content-Length"] = str(length)
        connection = self._new_connection()
        self._open(connection)
        try:
            connection.sock.settimeout(self.budget.connect)
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in signed.items():
                connection.putheader(name, value)
            connection.endheaders()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _sending_error(self.endpoint, exc) from exc
        except BaseException:
            connection.close()
            raise
        return Outgoing(self, connection, length)

    async def send_on_loop(self, method: str, path: str) -> Answer | None:
        """One attempt of a bodiless GET or HEAD of ``path`` on a kept-alive plain-HTTP
        connection, sent and answered on the running event loop (no thread hop); None when there
        is no such connection or it turned out closed by the server: then ``send`` it, in a
        worker thread, where a connection is opened."""
        if self.tls:
            return None
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            return None
        sock = connection.sock
        if sock is None:  # closed after its server said so: opened again by ``send``
            self.release(connection)
            return None
        signed = self._sign(method, path, "", {}, b"")
        if self._user_agent:
            signed["User-Agent"] = self._user_agent
        lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in signed.items()), "", ""]
        if sock.gettimeout() != 0.0:
            sock.setblocking(False)  # _exchange sets the timeouts back before a use in a thread
        try:
            async with asyncio.timeout(self.budget.read):
                request = "\r\n".join(lines).encode()
                status, headers, body, reusable = await exchange(sock, request, method == "HEAD")
        except ClosedUnused:
            connection.close()
            return None
        except TimeoutError as exc:
            connection.close()
            raise ReadTimeoutError(endpoint_url=self.endpoint, error=exc) from exc
        except MalformedAnswer as exc:
            connection.close()
            raise HTTPClientError(error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ConnectionClosedError(endpoint_url=self.endpoint) from exc
        except BaseException:  # cancelled mid-answer: the connection cannot carry another request
            connection.close()
            raise
        if reusable:
            self.release(connection)
        else:
            connection.close()
        return Answer(status, headers, body)

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
    ) -> http.client.HTTPResponse:
        sock = connection.sock
        # As urllib3 waits: ``connect`` for the server to take the request, ``read`` for its answer.
        sock.settimeout(self.budget.connect)
        # http.client sends a bytes body with the headers, in one segment when it fits.
        connection.request(method, target, body=body or None, headers=headers)
        sock.settimeout(self.budget.read)
        return connection.getresponse()

    @staticmethod
    def _target(path: str, query: Mapping[str, str] | None) -> tuple[str, str]:
        """The request target and the canonical query string of ``path`` with ``query``."""
        if not query:
            return path, ""
        canonical_query = "&".join(
            f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(query.items())
        )
        return f"{path}?{canonical_query}", canonical_query

    def _open(self, connection: http.client.HTTPConnection) -> None:
        try:
            connection.connect()
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self.endpoint, error=exc) from exc
        except OSError as exc:
            raise EndpointConnectionError(endpoint_url=self.endpoint, error=exc) from exc
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _connection(self) -> http.client.HTTPConnection:
        """An idle connection (unopened if its server closed it), else a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_connection()

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._context is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.budget.connect, context=self._context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.budget.connect)

    def release(self, connection: http.client.HTTPConnection) -> None:
        """Keep a connection whose last answer was read whole for the next request."""
        with self._lock:
            if len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _sign(
        self,
        method: str,
        path: str,
        canonical_query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        unsigned: bool = False,
    ) -> dict[str, str]:
        """The request's headers with its SigV4 ``Authorization``; ``unsigned`` declares the
        payload ``UNSIGNED-PAYLOAD`` even over plain HTTP (a body not in hand to hash)."""
        frozen = self._credentials.get_frozen_credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        payload = _EMPTY_SHA256
        if self.tls or unsigned:
            payload = _UNSIGNED
        elif body:
            payload = hashlib.sha256(body).hexdigest()
        signed = {name.lower(): str(value).strip() for name, value in headers.items()}
        signed.update({"host": self._host_header, "x-amz-date": stamp, "x-amz-content-sha256": payload})
        if frozen.token:
            signed["x-amz-security-token"] = frozen.token
        names = sorted(signed)
        listed = ";".join(names)
        canonical = "\n".join(
            (
                method,
                path,
                canonical_query,
                *(f"{name}:{signed[name]}" for name in names),
                "",
                listed,
                payload,
            )
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        signature = self._signature(frozen.secret_key or "", stamp, scope, canonical)
        signed["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={listed}, Signature={signature}"
        )
        return signed

    def presign(self, path: str, expires: int) -> str:
        """The query that lets its bearer GET ``path`` (quoted as sent) for ``expires`` seconds:
        SigV4 query signing with the host the only signed header and the payload unsigned, as
        botocore's presigner writes it. Computation alone, with the day's key cached: no request,
        and a credential refresh only where the credentials are refreshable."""
        frozen = self._credentials.get_frozen_credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        scope = f"{stamp[:8]}/{self._region}/s3/aws4_request"
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{frozen.access_key}/{scope}",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(expires),
            "X-Amz-SignedHeaders": "host",
        }
        if frozen.token:
            query["X-Amz-Security-Token"] = frozen.token
        canonical_query = _canonical_query(query)
        canonical = f"GET\n{path}\n{canonical_query}\nhost:{self._url_host}\n\nhost\n{_UNSIGNED}"
        signature = self._signature(frozen.secret_key or "", stamp, scope, canonical)
        return f"{canonical_query}&X-Amz-Signature={signature}"

    def _signature(self, secret: str, stamp: str, scope: str, canonical: str) -> str:
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        return hmac.new(self._signing_key(secret, stamp[:8]), to_sign.encode(), hashlib.sha256).hexdigest()

    def _signing_key(self, secret: str, day: str) -> bytes:
        """The day's key, derived once a day (and again when the credentials change)."""
        cached = self._keys
        if cached[0] == secret and cached[1] == day:
            return cached[2]
        key = f"AWS4{secret}".encode()
        for part in (day, self._region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._keys = (secret, day, key)
        return key


def _canonical_query(query: Mapping[str, str]) -> str:
    """``query`` as SigV4 signs it (and as sent): sorted, every value percent-encoded."""
    return "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(query.items())
    )
