"""The S3 driver's on-loop HTTP/1.1 exchange (storage_drivers/s3/exchange.py) against a loopback
server that the test drives byte by byte: each piece it sends is read by the exchange before the
next leaves, so answers split anywhere (a chunk's size line, a CRLF, a header's name) are
parsed across reads."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator

import anyio
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ConnectionClosedError, HTTPClientError, ReadTimeoutError

from storage_drivers.s3.clients import CallBudget
from storage_drivers.s3.exchange import HEAD_LIMIT, ClosedUnused, MalformedAnswer, Reply, exchange
from storage_drivers.s3.signed import SignedRequests

REQUEST = b"GET /b/key HTTP/1.1\r\nHost: s3\r\n\r\n"
HEAD_REQUEST = b"HEAD /b/key HTTP/1.1\r\nHost: s3\r\n\r\n"
WAIT = 10
"""Seconds a test waits for an exchange at most: an exchange that should have ended but hangs
fails the test instead of stalling the run."""


class Connection:
    """One loopback TCP connection: the exchange's non-blocking end and the server's end."""

    def __init__(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.client = socket.create_connection(listener.getsockname())
            self.server, _ = listener.accept()
        self.client.setblocking(False)
        self.server.setblocking(False)

    async def answer(
        self, pieces: list[bytes], *, head_only: bool = False, close: bool = False, request: bytes = REQUEST
    ) -> Reply:
        """``exchange``'s reply when the server answers ``pieces``, each read before the next is
        sent, then closes the connection if ``close``."""
        task = asyncio.create_task(exchange(self.client, request, head_only))
        loop = asyncio.get_running_loop()
        received = b""
        while not received.endswith(b"\r\n\r\n"):
            received += await loop.sock_recv(self.server, 1 << 16)
        assert received == request
        for piece in pieces:
            if task.done():
                break
            await loop.sock_sendall(self.server, piece)
            await self._taken(task)
        if close:
            self.server.close()
        async with asyncio.timeout(WAIT):
            return await task

    async def _taken(self, task: asyncio.Task[Reply]) -> None:
        """Until the exchange has read all that was sent (or ended)."""
        while not task.done():
            try:
                self.client.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return
            await asyncio.sleep(0)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def connection() -> Iterator[Connection]:
    opened = Connection()
    yield opened
    opened.close()


def summary(reply: Reply) -> tuple[int, bytes, bool]:
    """A reply's status, body and reusability."""
    status, _, body, reusable = reply
    return status, body, reusable


def bytewise(answer: bytes) -> list[bytes]:
    return [answer[i : i + 1] for i in range(len(answer))]


LENGTH_ANSWER = (
    b'HTTP/1.1 200 OK\r\nETag: "v1"\r\nx-amz-meta-Odd: caf\xe9\r\nContent-Length: 11\r\n\r\nhello world'
)
CHUNKED_ANSWER = (
    b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: "v2"\r\n\r\n'
    b'5;name=value;other="quoted;"\r\nhello\r\n'
    b"1\r\n \r\n"
    b"5\r\nworld\r\n"
    b"0;last\r\nX-Checksum: abc\r\nX-Other: def\r\n\r\n"
)


class TestFraming:
    @pytest.mark.parametrize("split", [False, True], ids=["whole", "byte-by-byte"])
    async def test_a_length(self, connection: Connection, split: bool) -> None:
        status, headers, body, reusable = await connection.answer(
            bytewise(LENGTH_ANSWER) if split else [LENGTH_ANSWER]
        )
        assert (status, body, reusable) == (200, b"hello world", True)
        assert headers["etag"] == '"v1"'  # case-insensitive, as http.client's
        assert headers["X-Amz-Meta-Odd"] == "caf\xe9"  # decoded as http.client decodes
        assert headers["Content-Length"] == "11"

    @pytest.mark.parametrize("split", [False, True], ids=["whole", "byte-by-byte"])
    async def test_chunks_with_extensions_and_trailers(self, connection: Connection, split: bool) -> None:
        status, headers, body, reusable = await connection.answer(
            bytewise(CHUNKED_ANSWER) if split else [CHUNKED_ANSWER]
        )
        assert (status, body, reusable) == (200, b"hello world", True)
        assert headers["ETag"] == '"v2"'
        assert "X-Checksum" not in headers  # a trailer field is not a header

    async def test_answers_one_after_another_on_one_connection(self, connection: Connection) -> None:
        for pieces in ([CHUNKED_ANSWER], [LENGTH_ANSWER[:30], LENGTH_ANSWER[30:]], bytewise(CHUNKED_ANSWER)):
            assert (await connection.answer(pieces))[2:] == (b"hello world", True)

    async def test_a_body_to_the_connections_end(self, connection: Connection) -> None:
        pieces = [b'HTTP/1.1 200 OK\r\nETag: "v3"\r\n\r\nsome ', b"bytes"]
        assert summary(await connection.answer(pieces, close=True)) == (200, b"some bytes", False)

    async def test_connection_close_is_honoured(self, connection: Connection) -> None:
        answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        assert summary(await connection.answer([answer])) == (200, b"ok", False)

    async def test_http_1_0_without_keep_alive_is_not_reused(self, connection: Connection) -> None:
        answer = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
        assert summary(await connection.answer([answer])) == (200, b"ok", False)

    @pytest.mark.parametrize("status", [204, 304])
    async def test_statuses_without_a_body(self, connection: Connection, status: int) -> None:
        answer = b'HTTP/1.1 %d Nothing\r\nETag: "v4"\r\n\r\n' % status
        assert summary(await connection.answer([answer])) == (status, b"", True)

    async def test_bytes_after_a_whole_answer_end_its_connection(self, connection: Connection) -> None:
        assert summary(await connection.answer([LENGTH_ANSWER + b"HTTP/1.1 200"])) == (
            200,
            b"hello world",
            False,
        )

    async def test_an_error_answer(self, connection: Connection) -> None:
        body = b"<Error><Code>NoSuchKey</Code></Error>"
        answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        assert summary(await connection.answer([answer])) == (404, body, True)


class TestHead:
    async def test_a_length_without_its_body(self, connection: Connection) -> None:
        """The server keeps the connection open and sends nothing after the head: the exchange
        ends there rather than wait for the 1234 bytes the head announces."""
        answer = b'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: "v5"\r\n\r\n'
        status, headers, body, reusable = await connection.answer(
            bytewise(answer), head_only=True, request=HEAD_REQUEST
        )
        assert (status, body, reusable) == (200, b"", True)
        assert headers["Content-Length"] == "1234"

    async def test_bytes_after_the_head_end_its_connection(self, connection: Connection) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
        reply = await connection.answer([answer], head_only=True, request=HEAD_REQUEST)
        assert summary(reply) == (200, b"", False)

    async def test_a_missing_object(self, connection: Connection) -> None:
        answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 40\r\n\r\n"
        reply = await connection.answer([answer], head_only=True, request=HEAD_REQUEST)
        assert summary(reply) == (404, b"", True)


class TestInterimAnswers:
    async def test_continue_then_the_answer(self, connection: Connection) -> None:
        pieces = [b"HTTP/1.1 100 Continue\r\n\r\n", *bytewise(LENGTH_ANSWER)]
        assert summary(await connection.answer(pieces)) == (200, b"hello world", True)

    async def test_early_hints_leave_no_headers(self, connection: Connection) -> None:
        pieces = [b"HTTP/1.1 103 Early Hints\r\nLink: </other>\r\n\r\n" + CHUNKED_ANSWER]
        status, headers, body, _ = await connection.answer(pieces)
        assert (status, body, headers["Link"]) == (200, b"hello world", None)

    async def test_before_a_head_answer(self, connection: Connection) -> None:
        pieces = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"]
        reply = await connection.answer(pieces, head_only=True, request=HEAD_REQUEST)
        assert summary(reply) == (200, b"", True)

    async def test_switching_protocols_is_refused(self, connection: Connection) -> None:
        answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
        with pytest.raises(MalformedAnswer, match="switching protocols"):
            await connection.answer([answer])


class TestCutShort:
    async def test_closed_before_any_answer(self, connection: Connection) -> None:
        """A kept-alive connection the server had closed: the caller sends the request again."""
        with pytest.raises(ClosedUnused):
            await connection.answer([], close=True)

    @pytest.mark.parametrize(
        "cut",
        [
            b"HTTP/1.1 200 OK\r\nContent-Le",  # in the head
            LENGTH_ANSWER[:-3],  # in a body of known length
            CHUNKED_ANSWER[:80],  # in a chunk
            CHUNKED_ANSWER[: CHUNKED_ANSWER.index(b"X-Other")],  # in the trailer
        ],
        ids=["head", "length", "chunk", "trailer"],
    )
    async def test_closed_mid_answer(self, connection: Connection, cut: bytes) -> None:
        with pytest.raises(http.client.IncompleteRead):
            await connection.answer([*bytewise(cut)[:40], cut[40:]], close=True)

    async def test_closed_mid_head_of_a_head_answer(self, connection: Connection) -> None:
        with pytest.raises(http.client.IncompleteRead):
            await connection.answer(
                [b"HTTP/1.1 200 OK\r\n"], head_only=True, request=HEAD_REQUEST, close=True
            )


class TestMalformed:
    @pytest.mark.parametrize(
        "answer",
        [
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent Length: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ],
        ids=["not-http", "status", "field-name", "chunk-size", "two-lengths", "negative-length"],
    )
    async def test_refused(self, connection: Connection, answer: bytes) -> None:
        with pytest.raises(MalformedAnswer):
            await connection.answer([answer])

    async def test_a_head_without_end(self, connection: Connection) -> None:
        """Headers that never end are refused once they pass the limit, not read forever."""
        field = b"X-Filler: " + b"x" * 1000 + b"\r\n"
        pieces = [b"HTTP/1.1 200 OK\r\n", *[field] * (HEAD_LIMIT // len(field) + 2)]
        with pytest.raises(MalformedAnswer, match="head over"):
            await connection.answer(pieces)


class _Scripted:
    """A loopback S3 stand-in answering the first request on its one connection well (so the
    signed path keeps the connection), and the second with ``later``, then closing the connection
    if ``close``, else sending nothing more."""

    def __init__(self, later: bytes, close: bool) -> None:
        self._later, self._close = later, close
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            accepted, _ = self._listener.accept()
        except OSError:
            return
        self._connections.append(accepted)
        for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", self._later):
            received = b""
            while not received.endswith(b"\r\n\r\n"):
                piece = accepted.recv(1 << 16)
                if not piece:
                    return
                received += piece
            accepted.sendall(answer)
        if self._close:
            accepted.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        for accepted in self._connections:
            accepted.close()


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[_Scripted]:
    server = _Scripted(*request.param)
    yield server
    server.close()


class TestDriverErrors:
    """Through the signed path's ``send_on_loop``, the exchange's failures are botocore's errors,
    which the driver retries and then reports as the storage being unavailable."""

    @pytest.mark.parametrize(
        ("scripted", "error"),
        [
            ((b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncut", True), ConnectionClosedError),
            ((b"HTTP/1.1 200 OK\r\nContent-Length: nine\r\n\r\n", False), HTTPClientError),
            ((b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstall", False), ReadTimeoutError),
        ],
        ids=["truncated", "malformed", "stalled"],
        indirect=["scripted"],
    )
    async def test_failures(self, scripted: _Scripted, error: type[Exception]) -> None:
        budget = CallBudget(connect=1, read=0.5, deadline=5, attempts=1)
        requests = SignedRequests(scripted.endpoint, Credentials("a", "s"), "us-east-1", budget, verify=True)
        try:
            first, _ = await anyio.to_thread.run_sync(requests.send, "GET", "/b/first")
            assert first.body == b"first"
            with pytest.raises(error):
                await requests.send_on_loop("GET", "/b/second")
        finally:
            requests.close()
