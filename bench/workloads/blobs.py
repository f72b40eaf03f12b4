"""One large blob: pushed monolithic and chunked, pulled whole and by Range (MB/s)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.api import check_digest_header, delete_blob, push_chunked, push_monolithic
from bench.data import Region, UniqueBlob
from bench.http import FileComparer, HTTPError, Redirects
from bench.measure import Case, Outcome
from bench.references import NGINX
from bench.servers import Server
from bench.settings import Settings

PUSH_REPOSITORY = "bench/push"
PULL_REPOSITORY = "bench/pull"
MB = 1e6


def verify_stored(server: Server, repository: str, blob: UniqueBlob) -> None:
    with server.connect() as connection:
        response = connection.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}")
    response.expect(200)
    check_digest_header(response, blob.digest)
    if int(response.header("Content-Length") or -1) != blob.size:
        raise HTTPError(f"stored size {response.header('Content-Length')}, pushed {blob.size}")


def discard_pushed(server: Server, repository: str, digests: list[str]) -> Callable[[], None]:
    """Untimed cleanup after a push: unlink via the API, drop the bytes, flush dirty pages.

    Flushing keeps one push's writeback from slowing the next measurement.
    """

    def cleanup() -> None:
        with server.connect() as connection:
            for digest in digests:
                delete_blob(connection, repository, digest)
        for digest in digests:
            server.remove_blob_data(digest)
        os.sync()

    return cleanup


class LargeBlob:
    def __init__(self, settings: Settings, path: Path, region: Region, redirects: bool = False) -> None:
        """``redirects``: also the pull rows through each server's redirecting twin (S3 runs)."""
        self.settings = settings
        self.path = path
        self.region = region  # the whole test file
        self.pull_blob = UniqueBlob(region, b"", region.digest)
        self.redirects = redirects

    def setup(self, server: Server) -> None:
        """Store the blob the pull cases read (untimed)."""
        with server.connect() as connection, self.path.open("rb") as file:
            push_monolithic(connection, PULL_REPOSITORY, self.pull_blob, file)
        verify_stored(server, PULL_REPOSITORY, self.pull_blob)
        os.sync()

    def cases(self) -> list[Case]:
        size = f"{self.settings.blob_size >> 20} MiB"
        chunk = f"{self.settings.chunk_size >> 20} MiB"
        range_size = f"{self.settings.range_length >> 20} MiB"
        return [
            Case(
                "push-monolithic",
                f"push {size} blob, monolithic POST+PUT",
                "MB/s",
                True,
                self.push_monolithic,
                target=3.6,
            ),
            Case(
                "push-chunked",
                f"push {size} blob, chunked PATCH ({chunk} chunks)",
                "MB/s",
                True,
                self.push_chunked,
                target=3.6,
            ),
            Case(
                "pull-full",
                f"pull {size} blob, full GET",
                "MB/s",
                True,
                self.pull_full,
                target=1.1,
                note="and >= 80% of nginx sendfile",
                reference=NGINX,
            ),
            Case(
                "pull-range", f"pull {range_size} Range GET of it", "MB/s", True, self.pull_range, target=1.1
            ),
            *self._redirected_cases(size, range_size),
        ]

    def _redirected_cases(self, size: str, range_size: str) -> list[Case]:
        if not self.redirects:
            return []
        return [
            Case(
                "pull-full-redirect",
                f"pull {size} blob, full GET via redirect to storage",
                "MB/s",
                True,
                self.pull_full_redirected,
                target=1.1,
                redirected=True,
            ),
            Case(
                "pull-range-redirect",
                f"pull {range_size} Range GET via redirect to storage",
                "MB/s",
                True,
                self.pull_range_redirected,
                target=1.1,
                redirected=True,
            ),
        ]

    def _push(self, server: Server, chunked: bool) -> Callable[[], Outcome]:
        blob = self.region.unique_blob()

        def timed() -> Outcome:
            with server.connect() as connection, self.path.open("rb") as file:
                started = time.perf_counter()
                if chunked:
                    push_chunked(connection, PUSH_REPOSITORY, blob, file, self.settings.chunk_size)
                else:
                    push_monolithic(connection, PUSH_REPOSITORY, blob, file)
                elapsed = time.perf_counter() - started
            verify_stored(server, PUSH_REPOSITORY, blob)
            return Outcome(
                blob.size / elapsed / MB,
                {"seconds": elapsed},
                cleanup=discard_pushed(server, PUSH_REPOSITORY, [blob.digest]),
            )

        return timed

    def push_monolithic(self, server: Server) -> Callable[[], Outcome]:
        return self._push(server, chunked=False)

    def push_chunked(self, server: Server) -> Callable[[], Outcome]:
        return self._push(server, chunked=True)

    def _pull(self, server: Server, start: int, length: int) -> Callable[[], Outcome]:
        whole = start == 0 and length == self.pull_blob.size
        headers = {} if whole else {"Range": f"bytes={start}-{start + length - 1}"}

        def timed() -> Outcome:
            comparer = FileComparer(str(self.path), start, length)
            try:
                with server.connect() as connection:
                    started = time.perf_counter()
                    response = connection.request(
                        "GET",
                        f"/v2/{PULL_REPOSITORY}/blobs/{self.pull_blob.digest}",
                        headers=headers,
                        sink=comparer,
                    )
                    elapsed = time.perf_counter() - started
            finally:
                comparer.close()
            if whole:
                response.expect(200)
                check_digest_header(response, self.pull_blob.digest)
            else:
                response.expect(206)
                expected_range = f"bytes {start}-{start + length - 1}/{self.pull_blob.size}"
                if response.header("Content-Range") != expected_range:
                    raise HTTPError(f"Content-Range {response.header('Content-Range')!r}")
            if not comparer.verified():
                raise HTTPError(f"pulled bytes differ from the blob at {comparer.mismatch_at}")
            return Outcome(length / elapsed / MB, {"seconds": elapsed})

        return timed

    def _pull_redirected(self, server: Server, start: int, length: int) -> Callable[[], Outcome]:
        """GET from the server's redirecting twin, then the content from where it points."""
        assert server.redirecting is not None
        twin = server.redirecting
        whole = start == 0 and length == self.pull_blob.size
        headers = {} if whole else {"Range": f"bytes={start}-{start + length - 1}"}

        def timed() -> Outcome:
            comparer = FileComparer(str(self.path), start, length)
            try:
                with twin.connect() as connection, Redirects() as storage:
                    started = time.perf_counter()
                    answer = connection.request(
                        "GET", f"/v2/{PULL_REPOSITORY}/blobs/{self.pull_blob.digest}", headers=headers
                    )
                    answer.expect(307)
                    response = storage.get(answer.header("Location"), headers, comparer)
                    elapsed = time.perf_counter() - started
            finally:
                comparer.close()
            response.expect(200 if whole else 206)
            if not comparer.verified():
                raise HTTPError(f"pulled bytes differ from the blob at {comparer.mismatch_at}")
            return Outcome(length / elapsed / MB, {"seconds": elapsed})

        return timed

    def pull_full_redirected(self, server: Server) -> Callable[[], Outcome]:
        return self._pull_redirected(server, 0, self.pull_blob.size)

    def pull_range_redirected(self, server: Server) -> Callable[[], Outcome]:
        return self._pull_redirected(server, self.settings.range_start, self.settings.range_length)

    def pull_full(self, server: Server) -> Callable[[], Outcome]:
        return self._pull(server, 0, self.pull_blob.size)

    def pull_range(self, server: Server) -> Callable[[], Outcome]:
        return self._pull(server, self.settings.range_start, self.settings.range_length)
