"""What the S3 driver does beyond the shared conformance suite: Distribution's key layout,
uploads continued by another process and after a crash, parts uploaded when a request closes,
purging, retries within a deadline and configuration; and the conformance suite again with
parts larger than S3's minimum, so that closing writers upload parts of every size."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import httpx
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from storage_drivers import (
    DriverConfigError,
    PathNotFound,
    StorageDriver,
    StorageError,
    StorageUnavailable,
    check_driver,
    create_driver,
)
from storage_drivers.s3 import S3Driver, parse_settings
from storage_drivers.s3.clients import CallBudget
from storage_drivers.s3.driver import READ_CHUNK
from storage_drivers.s3.lean import LeanObjects
from storage_drivers.s3.writer import pending_key
from storage_drivers.testsuite import MIB, DriverConformance, pattern, read_all
from tests.support.ceph import CephRGW
from tests.support.processes import free_port
from tests.support.tls import make_certificates

ROOT = "/registry-root"


@pytest.fixture
async def driver(ceph_rgw: CephRGW, s3_bucket: str) -> AsyncIterator[S3Driver]:
    parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, chunksize=5 * MIB)
    driver = S3Driver(parse_settings(parameters))
    yield driver
    await driver.close()


def keys(ceph_rgw: CephRGW, bucket: str, prefix: str) -> list[str]:
    listing = ceph_rgw.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def uploads(ceph_rgw: CephRGW, bucket: str, prefix: str) -> list[str]:
    listing = ceph_rgw.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


@pytest.mark.s3
class TestLayout:
    async def test_keys_are_distribution_keys(
        self, driver: S3Driver, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        path = "/docker/registry/v2/repositories/lib/app/_layers/sha256/abc/link"
        await driver.put_content(path, b"sha256:abc")
        assert keys(ceph_rgw, s3_bucket, "registry-root/docker/") == ["registry-root" + path]

    async def test_serves_objects_written_by_another_registry(
        self, driver: S3Driver, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        blob = "docker/registry/v2/blobs/sha256/12/1234/data"
        ceph_rgw.client().put_object(Bucket=s3_bucket, Key=f"registry-root/{blob}", Body=b"layer")
        assert await driver.get_content(f"/{blob}") == b"layer"
        assert await driver.list("/docker/registry/v2/blobs/sha256/12") == [
            "/docker/registry/v2/blobs/sha256/12/1234"
        ]

    async def test_unfinished_writes_stay_out_of_listings(self, driver: S3Driver) -> None:
        writer = await driver.writer("/uploads/u1/data")
        await writer.write(b"tail bytes")
        await writer.close()
        await driver.put_content("/uploads/u1/startedat", b"now")
        assert await driver.list("/uploads/u1") == ["/uploads/u1/startedat"]
        assert [info.path async for info in driver.walk("/uploads")] == ["/uploads/u1/startedat"]


@pytest.mark.s3
class TestUploads:
    async def test_another_process_continues_the_upload(
        self, driver: S3Driver, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        first, second = pattern(7 * MIB + 3, 1), pattern(7 * MIB, 2)
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, chunksize=5 * MIB)
        script = textwrap.dedent(
            f"""
            import asyncio, json, random
            from storage_drivers.s3 import S3Driver, parse_settings

            async def main():
                driver = S3Driver(parse_settings(json.loads({json.dumps(json.dumps(parameters))})))
                writer = await driver.writer("/uploads/other/data")
                data = random.Random(1).randbytes({len(first)})
                for start in range(0, len(data), 1 << 20):
                    await writer.write(data[start : start + (1 << 20)])
                await writer.close()
                print(writer.size)

            asyncio.run(main())
            """
        )
        done = await anyio.run_process([sys.executable, "-c", script], check=True)
        assert int(done.stdout) == len(first)
        writer = await driver.writer("/uploads/other/data", append=True)
        assert writer.size == len(first)
        await writer.write(second)
        await writer.commit()
        assert await read_all(driver, "/uploads/other/data") == first + second

    async def test_crash_after_a_part_keeps_the_size_exact(self, driver: S3Driver) -> None:
        path = "/uploads/crashed/data"
        head, more = pattern(6 * MIB, 3), pattern(4 * MIB + MIB // 2, 4)
        writer = await driver.writer(path)
        await writer.write(head)
        await writer.close()  # part 1 (5 MiB) uploaded, a 1 MiB tail kept in the pending object
        writer = await driver.writer(path, append=True)
        await writer.write(more)  # part 2 (the old tail + 4 MiB) goes up, 0.5 MiB stays in memory
        del writer  # the worker dies before close
        resumed = await driver.writer(path, append=True)
        assert resumed.size == 10 * MIB, "part 2 holds the old tail; only the unsent half MiB is lost"
        received = (head + more)[: 10 * MIB]
        rest = (head + more)[10 * MIB :] + pattern(MIB, 5)
        await resumed.write(rest)
        await resumed.commit()
        stored = hashlib.sha256(await read_all(driver, path)).hexdigest()
        assert stored == hashlib.sha256(received + rest).hexdigest()

    async def test_crash_before_the_first_part_was_recorded(self, driver: S3Driver) -> None:
        path = "/uploads/crashed-early/data"
        head = pattern(3 * MIB, 6)
        writer = await driver.writer(path)
        await writer.write(head)
        await writer.close()  # no multipart upload yet: everything is in the pending object
        writer = await driver.writer(path, append=True)
        await writer.write(pattern(4 * MIB, 7))  # starts a multipart upload nothing records yet
        del writer
        resumed = await driver.writer(path, append=True)
        assert resumed.size == len(head), "what was closed, and nothing of the lost request"
        await resumed.write(b"end")
        await resumed.commit()
        assert await read_all(driver, path) == head + b"end"

    async def test_close_uploads_what_fills_a_part(self, ceph_rgw: CephRGW, s3_bucket: str) -> None:
        """With 10 MiB parts, 16 MiB requests leave 6 MiB at each close: it goes up as a part of
        its own instead of a pending tail that the next request reads back and writes again."""
        driver = S3Driver(parse_settings(ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT)))
        path, s3 = "/uploads/whole-parts/data", ceph_rgw.client()
        key = "registry-root" + path
        requests = [pattern(16 * MIB, 10), pattern(16 * MIB, 11), pattern(3 * MIB, 12), pattern(2 * MIB, 13)]
        for number, data in enumerate(requests):
            writer = await driver.writer(path, append=number > 0)
            for start in range(0, len(data), MIB):
                await writer.write(data[start : start + MIB])
            await writer.close()
            if number == 1:
                (upload,) = s3.list_multipart_uploads(Bucket=s3_bucket, Prefix=key)["Uploads"]
                parts = s3.list_parts(Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"])["Parts"]
                assert [part["Size"] for part in parts] == [10 * MIB, 6 * MIB] * 2
                assert s3.head_object(Bucket=s3_bucket, Key=pending_key(key))["ContentLength"] == 0
        # 3 MiB stays pending; with the next 2 MiB it is a 5 MiB part: the smallest S3 allows.
        (upload,) = s3.list_multipart_uploads(Bucket=s3_bucket, Prefix=key)["Uploads"]
        parts = s3.list_parts(Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"])["Parts"]
        assert [part["Size"] for part in parts] == [10 * MIB, 6 * MIB] * 2 + [5 * MIB]
        resumed = await driver.writer(path, append=True)
        assert resumed.size == 37 * MIB
        await resumed.write(b"end")
        await resumed.commit()
        assert await read_all(driver, path) == b"".join(requests) + b"end"
        await driver.close()

    async def test_many_writers_at_once_upload_smaller_parts(self, ceph_rgw: CephRGW, s3_bucket: str) -> None:
        """Past BUFFERED_LIMIT held by the process's writers, parts are S3's minimum, not chunksize."""
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, chunksize=12 * MIB)
        driver = S3Driver(parse_settings(parameters))
        data = pattern(9 * MIB, seed=3)
        try:
            writers = [await driver.writer(f"/uploads/many/{n}/data") for n in range(3)]
            for writer in writers:
                await writer.write(data)  # 9, 18, then 27 MiB held: the third uploads a part
            client = ceph_rgw.client()
            sizes = []
            for n in range(3):
                listed = client.list_multipart_uploads(
                    Bucket=s3_bucket, Prefix=f"registry-root/uploads/many/{n}/"
                )
                sizes.append(
                    [
                        part["Size"]
                        for upload in listed.get("Uploads", [])
                        for part in client.list_parts(
                            Bucket=s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        ).get("Parts", [])
                    ]
                )
            assert sizes == [[], [], [5 * MIB]]
            for n, writer in enumerate(writers):
                await writer.commit()
                assert await read_all(driver, f"/uploads/many/{n}/data") == data
        finally:
            await driver.close()

    async def test_crash_while_closing_keeps_the_size_exact(self, driver: S3Driver) -> None:
        """close() uploads a part, then dies before recording it: the part holds the old tail."""
        path, big = "/uploads/crashed-closing/data", S3Driver(replace(driver.settings, chunksize=8 * MIB))
        head, more = pattern(9 * MIB, 14), pattern(5 * MIB, 15)
        writer = await big.writer(path)
        await writer.write(head)
        await writer.close()  # part 1 (8 MiB), a 1 MiB tail pending
        writer = await big.writer(path, append=True)
        await writer.write(more)
        await writer._upload_part(len(writer._spool))  # type: ignore[attr-defined]  # close's part
        del writer  # the worker dies before the pending object records it
        resumed = await big.writer(path, append=True)
        assert resumed.size == 14 * MIB
        await resumed.write(b"end")
        await resumed.commit()
        assert await read_all(big, path) == head + more + b"end"
        await big.close()

    async def test_purge_aborts_only_old_multipart_uploads(
        self, driver: S3Driver, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        path = "/docker/registry/v2/repositories/lib/_uploads/u2/data"
        writer = await driver.writer(path)
        await writer.write(pattern(6 * MIB, 6))
        await writer.close()
        assert await driver.purge_incomplete("/docker/registry/v2/repositories", 3600) == 0
        assert (await driver.writer(path, append=True)).size == 6 * MIB
        assert await driver.purge_incomplete("/docker/registry/v2/repositories", 0) == 1
        assert uploads(ceph_rgw, s3_bucket, "registry-root/docker/") == []
        with pytest.raises(StorageError, match="aborted"):
            await driver.writer(path, append=True)

    async def test_deleting_an_upload_directory_aborts_its_multipart_upload(
        self, driver: S3Driver, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        writer = await driver.writer("/uploads/u3/data")
        await writer.write(pattern(6 * MIB, 7))
        await writer.close()
        await driver.put_content("/uploads/u3/startedat", b"now")
        assert uploads(ceph_rgw, s3_bucket, "registry-root/uploads/u3/") == ["registry-root/uploads/u3/data"]
        await driver.delete("/uploads/u3")
        assert uploads(ceph_rgw, s3_bucket, "registry-root/uploads/u3/") == []
        assert keys(ceph_rgw, s3_bucket, "registry-root/uploads/u3/") == []


@pytest.mark.s3
class TestStreamedParts:
    """Writes announced with ``expect`` (a request's Content-Length) go to S3 as they arrive."""

    async def test_announced_parts_are_streamed_not_held(self, ceph_rgw: CephRGW, s3_bucket: str) -> None:
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, chunksize=20 * MIB)
        driver = S3Driver(parse_settings(parameters))
        path, data = "/uploads/streamed/data", pattern(47 * MIB + 3, 21)
        buffer, source = bytearray(MIB), memoryview(data)
        try:
            writer = await driver.writer(path, append=True)
            writer.expect(len(data), final=True)
            blocking = writer.blocking_write()
            assert blocking is not None
            tracemalloc.start()
            try:
                for start in range(0, len(data), MIB):
                    piece = source[start : start + MIB]
                    buffer[: len(piece)] = piece
                    await anyio.to_thread.run_sync(blocking, memoryview(buffer)[: len(piece)])
                    assert writer.size == start + len(piece)
                held = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert held < 4 * MIB, f"{held} bytes held while writing parts of 20 MiB"
            await writer.commit()
            stored = ceph_rgw.client().head_object(Bucket=s3_bucket, Key="registry-root" + path)
            assert stored["ETag"].endswith('-3"'), "20 MiB, 20 MiB, then the last 7 MiB"
            assert await read_all(driver, path) == data
        finally:
            await driver.close()

    async def test_a_part_refused_while_streamed_fails_with_the_s3_error(
        self, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        """The multipart upload aborted (purged) while a part streams: the write fails with the
        driver's error for S3's answer, the part is dropped, nothing is committed."""
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, chunksize=10 * MIB)
        driver = S3Driver(parse_settings(parameters))
        path, key, data = "/uploads/aborted/data", "registry-root/uploads/aborted/data", pattern(30 * MIB, 22)
        s3 = ceph_rgw.client()
        try:
            writer = await driver.writer(path, append=True)
            writer.expect(len(data), final=False)
            await writer.write(data[: 12 * MIB])  # part 1 stored, part 2 under way
            (upload,) = s3.list_multipart_uploads(Bucket=s3_bucket, Prefix=key)["Uploads"]
            s3.abort_multipart_upload(Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"])

            async def write_the_rest() -> None:
                for start in range(12 * MIB, len(data), MIB):
                    await writer.write(data[start : start + MIB])

            with pytest.raises(PathNotFound):
                await write_the_rest()
            assert writer.size == 10 * MIB, "what S3 had stored before, not the part dropped"
            await writer.close()
            with pytest.raises(PathNotFound):
                await driver.writer(path, append=True)  # its multipart upload is gone
            with pytest.raises(PathNotFound):
                await driver.stat(path)
        finally:
            await driver.close()

    @pytest.mark.parametrize("path_style", [True, False], ids=["signed-path", "boto3"])
    async def test_unannounced_bytes_are_spooled_not_held(
        self, ceph_rgw: CephRGW, s3_bucket: str, path_style: bool
    ) -> None:
        """A body of unknown length (chunked encoding) is gathered on local disk, and each part
        sent from there: the process holds no part in memory (on the signed path; boto3 sends
        a part from memory), and the tail and the last bytes are stored as written."""
        parameters = ceph_rgw.driver_parameters(
            s3_bucket, rootdirectory=ROOT, chunksize=10 * MIB, forcepathstyle=path_style
        )
        driver = S3Driver(parse_settings(parameters))
        path, data = f"/uploads/spooled-{path_style}/data", pattern(27 * MIB + 5, 23)
        try:
            writer = await driver.writer(path)
            tracemalloc.start()
            try:
                for start in range(0, 13 * MIB, MIB):  # a part, then 3 MiB left to close
                    await writer.write(data[start : start + MIB])
                held = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            if path_style:
                assert held < 4 * MIB, f"{held} bytes held while gathering a 10 MiB part"
            await writer.close()
            writer = await driver.writer(path, append=True)
            assert writer.size == 13 * MIB
            await writer.write(data[13 * MIB :])
            await writer.commit()
            stored = ceph_rgw.client().head_object(Bucket=s3_bucket, Key="registry-root" + path)
            assert stored["ETag"].endswith('-3"'), "10 MiB, 10 MiB, then the last 7 MiB"
            assert await read_all(driver, path) == data
        finally:
            await driver.close()

    async def test_a_spooled_part_cut_off_is_sent_again(self, ceph_rgw: CephRGW, s3_bucket: str) -> None:
        """The connection of a part sent from the spool is cut mid-body: the bytes are still on
        disk, so the part is sent again and the upload completes whole."""
        with _cutting_proxy(ceph_rgw.endpoint, b"partNumber=") as (endpoint, cuts):
            parameters = ceph_rgw.driver_parameters(
                s3_bucket, rootdirectory=ROOT, chunksize=5 * MIB, regionendpoint=endpoint
            )
            driver = S3Driver(parse_settings(parameters))
            path, data = "/uploads/cut-spooled/data", pattern(6 * MIB + 7, 24)
            try:
                writer = await driver.writer(path)
                for start in range(0, len(data), MIB):
                    await writer.write(data[start : start + MIB])
                await writer.commit()
                assert cuts == [1], "one part cut off, then sent whole"
                assert await read_all(driver, path) == data
            finally:
                await driver.close()


class TestRedirects:
    async def test_redirect_endpoint_replaces_the_host(self, ceph_rgw: CephRGW, s3_bucket: str) -> None:
        public = f"http://localhost:{ceph_rgw.rgw_port}"
        parameters = ceph_rgw.driver_parameters(s3_bucket, redirectendpoint=public)
        driver = S3Driver(parse_settings(parameters))
        await driver.put_content("/redirected/blob", b"via the public endpoint")
        url = await driver.redirect_url("/redirected/blob")
        assert url is not None
        assert url.startswith(f"{public}/{s3_bucket}/redirected/blob?")
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).content == b"via the public endpoint"
        await driver.close()

    async def test_presigned_urls_are_checked_by_the_gateway(self, ceph_rgw: CephRGW, s3_bucket: str) -> None:
        """URLs signed without boto3 (on the event loop, static credentials) open the object,
        and only that object: the gateway refuses a changed key, expiry or signature."""
        driver = S3Driver(parse_settings(ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT)))
        objects = driver._objects
        assert isinstance(objects, LeanObjects)
        assert objects.presigns_inline
        odd = "presigned/a b+c=d&e;f,g@h:i$j'k(l)m!n*o~p\u00fc%20q"  # a rootdirectory may hold these
        try:
            await anyio.to_thread.run_sync(lambda: objects.put(odd, b"signed by hand", {}))
            await driver.put_content("/presigned/other", b"not this one")
            async with httpx.AsyncClient() as client:
                url = objects.presign(odd, 60)
                assert (await client.get(url)).content == b"signed by hand"
                redirected = await driver.redirect_url("/presigned/other")
                assert redirected is not None
                assert (await client.get(redirected)).content == b"not this one"
                signature = redirected.rpartition("=")[2]
                forged = redirected[: -len(signature)] + format(int(signature, 16) ^ 1, "064x")
                elsewhere = f"{ceph_rgw.endpoint}/{s3_bucket}/{quote(odd)}?{redirected.partition('?')[2]}"
                longer = redirected.replace("X-Amz-Expires=", "X-Amz-Expires=9")
                for refused in (forged, elsewhere, longer):
                    assert (await client.get(refused)).status_code == 403, refused
        finally:
            await anyio.to_thread.run_sync(lambda: objects.delete(odd))
            await driver.close()

    @pytest.mark.parametrize(
        "endpoint",
        [
            "http://127.0.0.1:7480",
            "http://s3.example:80",
            "https://S3.Example:443/prefix",
            "https://[::1]:8443",
        ],
    )
    @pytest.mark.parametrize("token", [None, "session/token+="])
    def test_presigned_urls_match_botocore(self, endpoint: str, token: str | None) -> None:
        """The same query, signature included, as botocore's presigner for the same second."""
        credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
        parameters = {"bucket": "the-bucket", "region": "eu-west-3", "regionendpoint": endpoint}
        settings = parse_settings({**parameters, "forcepathstyle": True})
        budget = CallBudget(connect=1, read=1, deadline=1)
        objects = LeanObjects.create(credentials, settings, endpoint, budget)
        assert objects is not None
        key = "docker/registry/v2/blobs/sha256/ab/ab cd~é/data"
        for _ in range(5):  # until both sign within one second
            ours = objects.presign(key, 1200)
            request = AWSRequest(method="GET", url=f"{endpoint}/the-bucket/{quote(key, safe='/~')}")
            S3SigV4QueryAuth(credentials, "s3", "eu-west-3", expires=1200).add_auth(request)
            theirs = str(request.url)
            if parse_qs(urlsplit(ours).query)["X-Amz-Date"] == parse_qs(urlsplit(theirs).query)["X-Amz-Date"]:
                break
        assert ours.partition("?")[0] == theirs.partition("?")[0]
        assert parse_qs(urlsplit(ours).query) == parse_qs(urlsplit(theirs).query)


@pytest.mark.s3
class TestSmallReadsAndReadAhead:
    """Requests on small objects go through the signed path on path-style endpoints, boto3
    elsewhere; both answer alike. Blob reads come in pieces with the next one read ahead."""

    @pytest.mark.parametrize("path_style", [True, False], ids=["signed-path", "boto3"])
    async def test_small_reads_answer_as_boto3_does(
        self, ceph_rgw: CephRGW, s3_bucket: str, path_style: bool
    ) -> None:
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, forcepathstyle=path_style)
        driver = S3Driver(parse_settings(parameters))
        try:
            assert isinstance(driver._objects, LeanObjects) is path_style
            key = f"registry-root/links/{path_style}/link"
            ceph_rgw.client().put_object(Bucket=s3_bucket, Key=key, Body=b"sha256:abc")
            stored = ceph_rgw.client().head_object(Bucket=s3_bucket, Key=key)
            assert await driver.get_content(f"/links/{path_style}/link") == b"sha256:abc"
            info = await driver.stat(f"/links/{path_style}/link")
            assert (info.size, info.modified) == (10, stored["LastModified"].timestamp())
            assert not info.is_dir
            with pytest.raises(PathNotFound):
                await driver.get_content(f"/links/{path_style}/absent")
            with pytest.raises(PathNotFound):
                await driver.stat(f"/links/{path_style}/absent")
            assert (await driver.stat(f"/links/{path_style}")).is_dir
        finally:
            await driver.close()

    @pytest.mark.parametrize("path_style", [True, False], ids=["signed-path", "boto3"])
    async def test_batch_writes_store_as_boto3_does(
        self, ceph_rgw: CephRGW, s3_bucket: str, path_style: bool
    ) -> None:
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT, forcepathstyle=path_style)
        driver = S3Driver(parse_settings(parameters))
        absent = ceph_rgw.driver_parameters(f"{s3_bucket}-absent", forcepathstyle=path_style)
        nowhere = S3Driver(parse_settings(absent))
        try:
            items = [(f"/markers/{path_style}/{n}", b"" if n % 2 else b"content") for n in range(40)]
            await driver.put_many(items, durable=False)
            for path, data in items:
                stored = ceph_rgw.client().get_object(Bucket=s3_bucket, Key=f"registry-root{path}")
                assert (stored["Body"].read(), stored["ContentType"]) == (data, "application/octet-stream")
            with pytest.raises(StorageError) as refused:
                await nowhere.put_many([("/markers/one", b"")], durable=False)
            assert "NoSuchBucket" in str(refused.value)  # the S3 error code, read from the answer
        finally:
            await driver.close()
            await nowhere.close()

    @pytest.mark.parametrize("path_style", [True, False], ids=["signed-path", "boto3"])
    async def test_small_writes_answer_as_boto3_does(
        self, ceph_rgw: CephRGW, s3_bucket: str, path_style: bool
    ) -> None:
        """A layer's push on S3: start record, writer state and tail, copy into place, clean-up."""
        parameters = ceph_rgw.driver_parameters(
            s3_bucket, rootdirectory=ROOT, forcepathstyle=path_style, storageclass="STANDARD"
        )
        driver = S3Driver(parse_settings(parameters))
        folder = f"/writes/{path_style}"
        prefix = f"registry-root{folder}/"
        try:
            assert isinstance(driver._bulk_objects, LeanObjects) is path_style
            assert await driver.create_content(f"{folder}/upload/startedat", b"now")
            assert not await driver.create_content(f"{folder}/upload/startedat", b"later")
            writer = await driver.writer(f"{folder}/upload/data")
            await writer.write(b"first ")
            await writer.close()
            pending = ceph_rgw.client().head_object(Bucket=s3_bucket, Key=pending_key(f"{prefix}upload/data"))
            assert (pending["ContentLength"], pending["Metadata"]) == (
                6,
                {"upload-id": "", "parts": "0", "offset": "0"},
            )
            writer = await driver.writer(f"{folder}/upload/data", append=True)
            assert writer.size == 6
            await writer.write(b"second")
            await writer.commit()
            assert keys(ceph_rgw, s3_bucket, prefix) == [f"{prefix}upload/data", f"{prefix}upload/startedat"]
            await driver.move(f"{folder}/upload/data", f"{folder}/blob/data")
            stored = ceph_rgw.client().get_object(Bucket=s3_bucket, Key=f"{prefix}blob/data")
            assert (stored["Body"].read(), stored["ContentType"]) == (
                b"first second",
                "application/octet-stream",
            )
            assert await read_all(driver, f"{folder}/blob/data", 6) == b"second"
            assert await read_all(driver, f"{folder}/blob/data", 12) == b""
            with pytest.raises(PathNotFound):
                await driver.stat(f"{folder}/upload/data")
            assert (await driver.stat(f"{folder}/upload")).is_dir
            await driver.delete_many([f"{folder}/upload/startedat", f"{folder}/upload/data"])
            assert keys(ceph_rgw, s3_bucket, prefix) == [f"{prefix}blob/data"]
            with pytest.raises(PathNotFound):
                await driver.stat(f"{folder}/upload")
            with pytest.raises(PathNotFound):
                await driver.move(f"{folder}/upload/data", f"{folder}/elsewhere")
            # Committed with no byte of its own: the pending object is copied into place.
            writer = await driver.writer(f"{folder}/other/data")
            await writer.write(b"tail only")
            await writer.close()
            writer = await driver.writer(f"{folder}/other/data", append=True)
            await writer.commit()
            assert await driver.get_content(f"{folder}/other/data") == b"tail only"
            assert keys(ceph_rgw, s3_bucket, f"{prefix}other/") == [f"{prefix}other/data"]
        finally:
            await driver.close()

    async def test_reads_across_pieces_and_stopped_early(self, driver: S3Driver) -> None:
        data = pattern(3 * READ_CHUNK + 12345, seed=7)
        await driver.put_content("/blobs/big", data)
        assert await read_all(driver, "/blobs/big") == data
        start, length = READ_CHUNK - 5, 2 * READ_CHUNK + 10
        assert await read_all(driver, "/blobs/big", start, length) == data[start : start + length]
        pieces = driver.reader("/blobs/big")
        assert isinstance(pieces, AsyncGenerator)  # closable early, as a client hanging up closes it
        first = await anext(pieces)
        assert 0 < len(first) <= READ_CHUNK, "pieces as they arrive"
        assert first == data[: len(first)]
        await pieces.aclose()  # the stream is closed with bytes unread: its connection is dropped
        assert await read_all(driver, "/blobs/big", len(data) - 3) == data[-3:]
        # Connections a read left (non-blocking, read on the event loop) carry the next requests.
        for _ in range(3):
            assert await driver.get_content("/blobs/big") == data

    async def test_a_sized_read_closed_unread_lets_its_connection_go(
        self, ceph_rgw: CephRGW, driver: S3Driver
    ) -> None:
        """The registry opens a blob's content while it reads the link, and closes it unread when
        the repository does not hold the blob: each such stream lets its connection go at once,
        though the caller still holds it."""
        data = pattern(4 * READ_CHUNK, seed=9)
        await driver.put_content("/blobs/sized", data)
        before = _gateway_sockets(ceph_rgw.endpoint)
        opened = [await driver.sized_reader("/blobs/sized", 5) for _ in range(4)]
        assert [size for size, _ in opened] == [len(data)] * 4
        during = _gateway_sockets(ceph_rgw.endpoint)
        for _, chunks in opened:
            await chunks.aclose()  # type: ignore[attr-defined]
        after = _gateway_sockets(ceph_rgw.endpoint)
        assert during - after == 4, (before, during, after)
        assert after <= before
        # What is left carries the next read.
        size, chunks = await driver.sized_reader("/blobs/sized", READ_CHUNK - 1, 3)
        assert size == len(data)
        assert b"".join([chunk async for chunk in chunks]) == data[READ_CHUNK - 1 : READ_CHUNK + 2]

    async def test_keys_that_need_encoding_are_signed_as_s3_checks(
        self, ceph_rgw: CephRGW, s3_bucket: str
    ) -> None:
        """The signed path writes the canonical URI and query S3 recomputes: a key with spaces,
        reserved and non-ASCII characters (a ``rootdirectory`` may hold them) is stored, read,
        listed and deleted under its own name."""
        driver = S3Driver(parse_settings(ceph_rgw.driver_parameters(s3_bucket)))
        objects = driver._objects
        assert isinstance(objects, LeanObjects)
        odd = "odd/a b+c=d&e;f,g@h:i$j'k(l)m!n*o~p\u00fc%20q"
        try:
            await anyio.to_thread.run_sync(lambda: objects.put(f"{odd}/file", b"stored", {}))
            assert await anyio.to_thread.run_sync(lambda: objects.get(f"{odd}/file")) == b"stored"
            assert (await anyio.to_thread.run_sync(lambda: objects.head(f"{odd}/file"))).size == 6
            assert await anyio.to_thread.run_sync(lambda: objects.first_modified(f"{odd}/"))
            assert keys(ceph_rgw, s3_bucket, "odd/") == [f"{odd}/file"]
            refused = await anyio.to_thread.run_sync(lambda: objects.delete_keys([f"{odd}/file", f"{odd}/x"]))
            assert refused is None
            assert keys(ceph_rgw, s3_bucket, "odd/") == []
        finally:
            await driver.close()

    def test_checking_the_configuration_leaves_boto3_unloaded(self) -> None:
        script = textwrap.dedent(
            """
            import sys
            from storage_drivers import check_driver
            check_driver("s3", {"bucket": "b", "region": "r", "regionendpoint": "http://127.0.0.1:1"})
            assert "boto3" not in sys.modules and "botocore" not in sys.modules, "boto3 loaded"
            """
        )
        subprocess.run([sys.executable, "-c", script], check=True)
        with pytest.raises(DriverConfigError, match="bucket"):
            check_driver("s3", {"region": "r"})


class _Failing(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request with one error, counting them."""

    status = 503
    code = "SlowDown"
    requests = 0

    def _fail(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"<Error><Code>{self.code}</Code><Message>try later</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _fail

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _gateway_sockets(endpoint: str) -> int:
    """This process's established TCP connections to ``endpoint``'s port."""
    port = urlsplit(endpoint).port
    inodes = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") in inodes
    return count


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` answering on a loopback port in a thread; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _cutting_proxy(upstream: str, marker: bytes) -> Iterator[tuple[str, list[int]]]:
    """A TCP relay to ``upstream`` that cuts the first connection whose request line holds
    ``marker`` once 1 MiB of it has passed; its URL, and a list holding the number of cuts."""
    target = urlsplit(upstream)
    listener = socket.create_server(("127.0.0.1", 0))
    cuts = [0]

    def pipe(source: socket.socket, sink: socket.socket, cut_after: int | None) -> None:
        passed = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if cut_after is None and passed == 0 and marker in data.split(b"\r\n", 1)[0] and not cuts[0]:
                    cuts[0] += 1
                    cut_after = MIB
                sink.sendall(data)
                passed += len(data)
                if cut_after is not None and passed >= cut_after:
                    break
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def relay(client: socket.socket) -> None:
        server = socket.create_connection((target.hostname or "127.0.0.1", target.port or 80))
        threading.Thread(target=pipe, args=(server, client, None), daemon=True).start()
        pipe(client, server, None)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", cuts
    finally:
        listener.close()


@pytest.fixture
def failing_endpoint() -> Iterator[tuple[str, type[_Failing]]]:
    handler = type("Handler", (_Failing,), {"requests": 0})
    with _serving(handler) as url:
        yield url, handler


def offline_driver(endpoint: str, attempts: int, deadline: float = 60) -> S3Driver:
    settings = parse_settings(
        {
            "region": "us-east-1",
            "bucket": "b",
            "regionendpoint": endpoint,
            "forcepathstyle": True,
            "accesskey": "a",
            "secretkey": "s",
        }
    )
    budget = CallBudget(connect=1, read=1, deadline=deadline, attempts=attempts)
    return S3Driver(settings, quick=budget, bulk=budget)


class TestTransientFailures:
    @pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
    async def test_retried_then_unavailable(
        self, failing_endpoint: tuple[str, type[_Failing]], status: int, code: str
    ) -> None:
        endpoint, handler = failing_endpoint
        handler.status, handler.code = status, code
        driver = offline_driver(endpoint, attempts=3)
        with pytest.raises(StorageUnavailable):
            await driver.get_content("/blob")
        assert handler.requests == 3
        with pytest.raises(StorageUnavailable):
            await driver.put_content("/blob", b"never stored")
        writer = await driver.writer("/upload/data")
        await writer.write(b"x")
        with pytest.raises(StorageUnavailable):
            await writer.commit()
        await driver.close()

    async def test_retries_stop_at_the_deadline(self, failing_endpoint: tuple[str, type[_Failing]]) -> None:
        """Attempts to spare, but no retry starts that could end past the call's deadline."""
        endpoint, handler = failing_endpoint
        driver = offline_driver(endpoint, attempts=50, deadline=3)  # an attempt may take 2 s
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await driver.stat("/blob")
        assert time.monotonic() - started <= 3
        assert 2 <= handler.requests < 50
        await driver.close()

    async def test_connection_refused_is_unavailable(self) -> None:
        driver = offline_driver(f"http://127.0.0.1:{free_port()}", attempts=2)
        with pytest.raises(StorageUnavailable):
            await driver.stat("/blob")
        with pytest.raises(StorageUnavailable):
            await driver.put_content("/blob", b"x")
        await driver.close()


class _Forgetful(BaseHTTPRequestHandler):
    """An S3 endpoint serving one object, that closes each connection after its answer without
    saying so (as a server dropping idle keep-alive connections does), and cuts the first GET of
    the object short after ``cut`` bytes."""

    protocol_version = "HTTP/1.1"
    content = pattern(3 * MIB + 5, seed=3)
    cut = MIB + 7
    ranges: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        wanted = self.headers.get("Range", "bytes=0-")
        type(self).ranges.append(wanted)
        first_text, _, last_text = wanted.removeprefix("bytes=").partition("-")
        first = int(first_text)
        last = int(last_text) if last_text else len(self.content) - 1
        body = self.content[first : last + 1]
        self.send_response(206 if "Range" in self.headers else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"one-version"')
        self.end_headers()
        self.wfile.write(body[: self.cut] if len(type(self).ranges) == 1 else body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Closing(BaseHTTPRequestHandler):
    """An S3 endpoint serving one object whose answers say "Connection: close", as an HTTP/1.0
    proxy in front of a gateway does."""

    protocol_version = "HTTP/1.1"
    content = pattern(MIB + 3, seed=4)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.content)))
        self.send_header("ETag", '"one-version"')
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(self.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _KeptAlive(BaseHTTPRequestHandler):
    """An S3 endpoint keeping connections alive: GETs answer in chunks (Transfer-Encoding), HEADs
    with a length; ``/b/missing`` is NoSuchKey, the first GET of ``/b/flaky`` a 503, and
    ``/b/large`` comes with a length, in many reads."""

    protocol_version = "HTTP/1.1"
    content = pattern(100_000, seed=9)
    large = pattern(3 * MIB + 1, seed=10)
    peers: ClassVar[set[int]] = set()
    requests: ClassVar[list[str]] = []

    def _answer(self, status: int, body: bytes, chunked: bool) -> None:
        type(self).peers.add(self.client_address[1])
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(status)
        self.send_header("ETag", '"v1"')
        self.send_header("Last-Modified", "Sun, 06 Dec 2026 04:18:46 GMT")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 30_000):
                piece = body[start : start + 30_000]
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/b/missing":
            self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>", chunked=False)
        elif self.path == "/b/flaky" and type(self).requests.count("GET /b/flaky") == 0:
            self._answer(503, b"<Error><Code>SlowDown</Code></Error>", chunked=False)
        elif self.path == "/b/large":
            self._answer(200, self.large, chunked=False)
        else:
            self._answer(200, self.content, chunked=True)

    def do_HEAD(self) -> None:
        self._answer(200, self.content, chunked=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def forgetful_endpoint() -> Iterator[tuple[str, type[_Forgetful]]]:
    handler = type("Handler", (_Forgetful,), {"ranges": []})
    with _serving(handler) as url:
        yield url, handler


@pytest.fixture
def tls_gateway(ceph_rgw: CephRGW, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """The gateway behind a TLS terminator that relays bytes unchanged: its https endpoint and
    the CA file that trusts it."""
    certificates = make_certificates(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    gateway = ceph_rgw.endpoint.removeprefix("http://").rpartition(":")

    def relay(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                target.sendall(data)
        except OSError:
            pass
        finally:
            target.close()
            source.close()

    def serve() -> None:
        while True:
            try:
                accepted, _ = listener.accept()
            except OSError:
                return
            try:
                client = context.wrap_socket(accepted, server_side=True)
            except OSError:
                accepted.close()  # a client that refused the certificate
                continue
            upstream = socket.create_connection((gateway[0], int(gateway[2])))
            threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
            threading.Thread(target=relay, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}", str(certificates.ca_cert)
    listener.close()


SHORT = CallBudget(connect=1, read=2, deadline=4, attempts=2)


class TestSignedConnections:
    async def test_over_tls_with_the_bundle_boto3_trusts(
        self, tls_gateway: tuple[str, str], s3_bucket: str, ceph_rgw: CephRGW, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Over TLS the payload is sent unsigned, the certificate checked against AWS_CA_BUNDLE
        (or not at all with ``skipverify``), and a server it does not trust is refused."""
        endpoint, bundle = tls_gateway
        parameters = {**ceph_rgw.driver_parameters(s3_bucket, rootdirectory=ROOT), "regionendpoint": endpoint}
        untrusted = S3Driver(parse_settings({**parameters, "secure": True}), quick=SHORT, bulk=SHORT)
        skipping = S3Driver(parse_settings({**parameters, "secure": True, "skipverify": True}))
        monkeypatch.setenv("AWS_CA_BUNDLE", bundle)
        driver = S3Driver(parse_settings({**parameters, "secure": True}))
        data = pattern(2 * READ_CHUNK + 3, seed=5)
        try:
            assert isinstance(driver._objects, LeanObjects)
            await driver.put_content("/tls/blob", data)
            assert await read_all(driver, "/tls/blob") == data
            # Read in worker threads over TLS: a range ending where a hop's pieces end, and one not.
            assert await read_all(driver, "/tls/blob", 5, 2 * READ_CHUNK) == data[5 : 5 + 2 * READ_CHUNK]
            assert await read_all(driver, "/tls/blob", 7, READ_CHUNK) == data[7 : 7 + READ_CHUNK]
            assert (await driver.stat("/tls/blob")).size == len(data)
            assert await skipping.get_content("/tls/blob") == data
            with pytest.raises(StorageUnavailable):
                await untrusted.get_content("/tls/blob")
        finally:
            for opened in (driver, skipping, untrusted):
                await opened.close()

    async def test_small_requests_on_a_kept_alive_connection(self) -> None:
        """After the first request opened a connection, GETs and HEADs go out on it from the event
        loop: chunked answers read whole, S3's errors raised as they are, a 503 retried."""

        class Handler(_KeptAlive):  # counts of its own
            peers: ClassVar[set[int]] = set()
            requests: ClassVar[list[str]] = []

        handler = Handler
        with _serving(handler) as endpoint:
            driver = offline_driver(endpoint, attempts=3)
            try:
                for _ in range(3):
                    assert await driver.get_content("/blob") == handler.content
                    assert (await driver.stat("/blob")).size == len(handler.content)
                with pytest.raises(PathNotFound):
                    await driver.get_content("/missing")
                assert await driver.get_content("/flaky") == handler.content
                assert handler.requests.count("GET /b/flaky") == 2
                assert await driver.get_content("/large") == handler.large
                assert len(handler.requests) == 10
                assert len(handler.peers) == 1, "every request on the connection the first opened"
            finally:
                await driver.close()

    async def test_a_read_cut_short_resumes_where_it_stopped(
        self, forgetful_endpoint: tuple[str, type[_Forgetful]]
    ) -> None:
        endpoint, handler = forgetful_endpoint
        driver = offline_driver(endpoint, attempts=1)
        try:
            assert await read_all(driver, "/blob") == handler.content
            assert handler.ranges[0] == "bytes=0-"
            # Resumed once, where the pieces handed out end: within what arrived before the cut.
            assert len(handler.ranges) == 2
            assert 0 < int(handler.ranges[1].removeprefix("bytes=").rstrip("-")) <= handler.cut
        finally:
            await driver.close()

    async def test_answers_that_close_their_connection_are_read_whole(self) -> None:
        with _serving(_Closing) as endpoint:
            driver = offline_driver(endpoint, attempts=1)
            try:
                for _ in range(2):  # the second on a new connection: the first was not kept
                    assert await read_all(driver, "/blob") == _Closing.content
            finally:
                await driver.close()

    async def test_a_connection_the_server_closed_is_not_a_failure(
        self, forgetful_endpoint: tuple[str, type[_Forgetful]]
    ) -> None:
        """With one attempt per call, every call after the first finds its kept-alive connection
        closed by the server, and sends again on a new one."""
        endpoint, handler = forgetful_endpoint
        handler.ranges.append("")  # no cut
        driver = offline_driver(endpoint, attempts=1)
        try:
            for _ in range(3):
                assert await driver.get_content("/blob") == handler.content
        finally:
            await driver.close()


class TestConfiguration:
    def test_every_problem_is_listed(self) -> None:
        with pytest.raises(DriverConfigError) as raised:
            parse_settings(
                {
                    "secure": "maybe",
                    "chunksize": 1024,
                    "accesskey": "only-one",
                    "storageclass": "COLD",
                    "bogus": 1,
                }
            )
        problems = " | ".join(raised.value.problems)
        for expected in (
            "storage.s3.bucket: required",
            "storage.s3.region: required",
            "storage.s3.secure: must be true or false",
            "storage.s3.chunksize: must be an integer from",
            "given together",
            "storageclass",
            "storage.s3.bogus: unknown key",
        ):
            assert expected in problems
        assert len(raised.value.problems) == 7

    def test_distribution_values_and_environment_strings(self) -> None:
        settings = parse_settings(
            {
                "region": "eu-west-1",
                "bucket": "b",
                "secure": "false",
                "v4auth": "true",
                "chunksize": str(16 * MIB),
                "rootdirectory": "/a/b/",
                "accesskey": "",
                "secretkey": "",
                "encrypt": True,
                "keyid": "kms-key",
                "storageclass": "reduced_redundancy",
                "loglevel": "off",
            }
        )
        assert (settings.secure, settings.chunksize, settings.key_prefix) == (False, 16 * MIB, "a/b/")
        assert settings.accesskey is None
        assert settings.put_arguments() == {
            "ContentType": "application/octet-stream",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": "kms-key",
            "StorageClass": "REDUCED_REDUNDANCY",
        }
        assert parse_settings({"region": "r", "bucket": "b"}).key_prefix == ""

    @pytest.mark.s3
    async def test_credentials_from_the_environment(
        self, ceph_rgw: CephRGW, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ceph_rgw.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ceph_rgw.secret_key)
        parameters = ceph_rgw.driver_parameters(s3_bucket)
        del parameters["accesskey"], parameters["secretkey"]
        driver = create_driver("s3", parameters)
        await driver.put_content("/from-environment", b"ok")
        assert await driver.get_content("/from-environment") == b"ok"
        await driver.close()


@pytest.mark.s3
class TestS3DriverWithLargeParts(DriverConformance):
    """The conformance suite with 8 MiB parts: closing writers then hold 5 to 8 MiB (uploaded
    as parts of their own) as well as smaller tails, on both sides of every boundary."""

    streamed_size: ClassVar[int] = 256 * MIB
    """TestS3Driver streams gigabytes; here the stream only needs to cross part boundaries."""
    scans: ClassVar[bool] = True
    redirects: ClassVar[bool] = True
    redirect_expiry: ClassVar[float] = 3.0

    @pytest.fixture
    async def driver(self, ceph_rgw: CephRGW, s3_bucket: str) -> AsyncIterator[StorageDriver]:
        parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory="/large-parts", chunksize=8 * MIB)
        driver = S3Driver(parse_settings(parameters), redirect_expiry=self.redirect_expiry)
        yield driver
        await driver.close()


_SERVING_SCRIPT = """
import asyncio, json, sys
from storage_drivers.s3 import S3Driver, parse_settings
from storage_drivers.testsuite import pattern, read_all

MIB = 1 << 20

async def serve(parameters):
    driver = S3Driver(parse_settings(parameters))
    try:
        big = pattern(12 * MIB + 3, seed=11)
        # A request of announced length, streamed in parts; a chunked one, gathered in parts;
        # each ended inside a part, continued by another writer and committed.
        for name, streamed in (("streamed", True), ("gathered", False)):
            writer = await driver.writer(f"/uploads/{name}/data")
            if streamed:
                writer.expect(7 * MIB, final=False)
            await writer.write(big[: 7 * MIB])
            await writer.close()
            writer = await driver.writer(f"/uploads/{name}/data", append=True)
            assert writer.size == 7 * MIB, writer.size
            if streamed:
                writer.expect(len(big) - 7 * MIB, final=True)
            await writer.write(big[7 * MIB :])
            await writer.commit()
            assert await read_all(driver, f"/uploads/{name}/data") == big, name
        # Copied in parts on the server (above multipartcopythresholdsize), then listed.
        await driver.move("/uploads/streamed/data", "/blobs/aa/data", size=len(big))
        assert await read_all(driver, "/blobs/aa/data") == big
        await driver.put_many([(f"/tags/t{n:02}/link", b"x") for n in range(12)], durable=False)
        listed = await driver.list("/tags")
        assert listed == [f"/tags/t{n:02}" for n in range(12)], listed
        assert await driver.list("/tags", after="t09", limit=2) == ["/tags/t10", "/tags/t11"]
        scanned = await driver.scan("/tags", after="t05/link", limit=3)
        assert scanned == [f"/tags/t{n:02}/link" for n in (6, 7, 8)], scanned
        walked = sorted([(info.path, info.size) async for info in driver.walk("/tags")])
        assert walked == [(f"/tags/t{n:02}/link", 1) for n in range(12)], walked
        # An upload left open is aborted by purging, then the folder deleted whole.
        writer = await driver.writer("/uploads/left/data")
        writer.expect(6 * MIB, final=False)
        await writer.write(big[: 6 * MIB])
        await writer.close()
        assert await driver.purge_incomplete("/uploads", older_than=0) == 1
        await driver.delete("/uploads")
        assert await driver.redirect_url("/blobs/aa/data")
    finally:
        await driver.close()

asyncio.run(serve(json.loads(sys.argv[1])))
print(json.dumps("boto3" in sys.modules))
"""


@pytest.mark.s3
class TestServingWithoutBoto3:
    """On a path-style endpoint a worker serves every request without importing boto3 (about
    10 MiB a process for its clients' service model): listings and every step of a multipart
    upload go through the signed path. Elsewhere boto3 does the same work."""

    @pytest.mark.parametrize("path_style", [True, False], ids=["signed-path", "boto3"])
    def test_uploads_copies_listings_and_purges(
        self, ceph_rgw: CephRGW, s3_bucket: str, path_style: bool
    ) -> None:
        parameters = ceph_rgw.driver_parameters(
            s3_bucket,
            rootdirectory=f"/serving-{path_style}",
            chunksize=5 * MIB,
            multipartcopythresholdsize=6 * MIB,
            multipartcopychunksize=5 * MIB,
            forcepathstyle=path_style,
        )
        done = subprocess.run(
            [sys.executable, "-c", _SERVING_SCRIPT, json.dumps(parameters)],
            check=True,
            capture_output=True,
            text=True,
        )
        assert json.loads(done.stdout.splitlines()[-1]) is not path_style
        assert uploads(ceph_rgw, s3_bucket, f"serving-{path_style}/") == []
        assert keys(ceph_rgw, s3_bucket, f"serving-{path_style}/uploads/") == []


_PULLING_SCRIPT = """
import asyncio, json, sys
from storage_drivers.s3 import S3Driver, parse_settings

async def pull(parameters):
    driver = S3Driver(parse_settings(parameters))
    loaded = set(sys.modules)
    try:
        # A pull's calls, the first ones on fresh connections (opened in threads), then again on
        # the kept-alive ones (on the event loop).
        for _ in range(2):
            assert await driver.get_content("/links/a") == b"link"
            assert await driver.file_size("/blobs/a/data") == 4
            assert await driver.redirect_url("/blobs/a/data")
            assert b"".join([chunk async for chunk in driver.reader("/blobs/a/data")]) == b"blob"
            size, chunks = await driver.sized_reader("/blobs/a/data")
            assert (size, b"".join([chunk async for chunk in chunks])) == (4, b"blob")
    finally:
        await driver.close()
    return sorted(set(sys.modules) - loaded)

print(json.dumps(asyncio.run(pull(json.loads(sys.argv[1])))))
"""


@pytest.mark.s3
def test_a_workers_first_requests_import_nothing(ceph_rgw: CephRGW, s3_bucket: str) -> None:
    """A fresh worker's first GET of a link, HEAD, redirect and blob reads import no module: what
    they need is loaded with the driver, not in the middle of the first requests (anyio's thread
    backend alone took about 35 ms)."""
    parameters = ceph_rgw.driver_parameters(s3_bucket, rootdirectory="/first-requests")
    client = ceph_rgw.client()
    client.put_object(Bucket=s3_bucket, Key="first-requests/links/a", Body=b"link")
    client.put_object(Bucket=s3_bucket, Key="first-requests/blobs/a/data", Body=b"blob")
    done = subprocess.run(
        [sys.executable, "-c", _PULLING_SCRIPT, json.dumps(parameters)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []
