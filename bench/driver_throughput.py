"""Storage driver throughput: stream one large object through a driver's writer and reader.

    .venv/bin/python -m bench.driver_throughput [--size-mib 1024] [--drivers filesystem,s3]

S3 runs against a throwaway Ceph RADOS Gateway (tests.support.ceph). Each driver is measured
in its own process so that its peak memory (ru_maxrss) is its own. Data is generated on the
fly in 1 MiB pieces, as a registry receives a push; nothing holds the whole object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from storage_drivers import StorageDriver
from storage_drivers.filesystem import FilesystemDriver
from storage_drivers.s3 import S3Driver, parse_settings
from storage_drivers.testsuite import MIB, streamed_chunks


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(driver: StorageDriver, size: int, reopen_every: int) -> dict[str, Any]:
    path = "/docker/registry/v2/bench/data"
    baseline = peak_rss_mib()
    written = hashlib.sha256()
    started = time.perf_counter()
    writer = await driver.writer(path)
    position = 0
    async for chunk in streamed_chunks(size, seed=1):
        await writer.write(chunk)
        written.update(chunk)
        position += len(chunk)
        if reopen_every and position % reopen_every == 0 and position < size:
            await writer.close()  # a chunked upload: the next PATCH continues it
            writer = await driver.writer(path, append=True)
    await writer.commit()
    write_seconds = time.perf_counter() - started
    started = time.perf_counter()
    read = hashlib.sha256()
    async for chunk in driver.reader(path):
        read.update(chunk)
    read_seconds = time.perf_counter() - started
    assert read.hexdigest() == written.hexdigest(), "content changed on the way"
    await driver.delete("/docker/registry/v2/bench")
    return {
        "size_mib": size // MIB,
        "write_mb_s": round(size / write_seconds / 1e6, 1),
        "read_mb_s": round(size / read_seconds / 1e6, 1),
        "peak_rss_growth_mib": round(peak_rss_mib() - baseline, 1),
    }


def run_one(args: argparse.Namespace) -> None:
    if args.one == "filesystem":
        driver: StorageDriver = FilesystemDriver(tempfile.mkdtemp(prefix="bench-fs-"))
    else:
        driver = S3Driver(parse_settings(json.loads(args.s3)))
    result = asyncio.run(measure(driver, args.size_mib * MIB, args.reopen_every_mib * MIB))
    print(json.dumps({"driver": args.one, **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reopen-every-mib", type=int, default=0, help="close and reopen the writer")
    parser.add_argument("--drivers", default="filesystem,s3")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--s3", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args)
        return
    from tests.support.ceph import CephRGW  # noqa: PLC0415 - only when S3 is measured

    rgw = None
    try:
        for name in args.drivers.split(","):
            command = [sys.executable, "-m", "bench.driver_throughput", "--one", name]
            command += ["--size-mib", str(args.size_mib), "--reopen-every-mib", str(args.reopen_every_mib)]
            if name == "s3":
                if rgw is None:
                    rgw = CephRGW(Path(tempfile.mkdtemp(prefix="bench-ceph-"))).start()
                command += ["--s3", json.dumps(rgw.driver_parameters(rgw.create_bucket("bench")))]
            subprocess.run(command, check=True)
    finally:
        if rgw is not None:
            rgw.stop()


if __name__ == "__main__":
    main()
