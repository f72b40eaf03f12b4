"""Push and pull one large blob through the registry on S3 and on the filesystem, same run.

    .venv/bin/python -m bench.s3_transfer [--size-mib 1024] [-n 3] [--chunk-mib 16]

Three registries (``python -m registry serve``, two workers each) run side by side: filesystem
storage, S3 on a throwaway Ceph RADOS Gateway (tests.support.ceph) with blob GETs redirected to
presigned URLs, and S3 on the same bucket with ``storage.redirect.disable``. For each, per
repetition (interleaved, so background load hits all alike):

- push, monolithic: POST, then one PUT ``?digest=`` with the whole blob;
- push, chunked: POST, a PATCH per ``--chunk-mib`` with ``Content-Range``, PUT ``?digest=``;
- pull, full GET: the blob, following the redirect where there is one; every byte compared with
  the source file.

The blob is a file of random bytes read from the page cache; after each push the blob is
deleted through the API. Prints one JSON line per measurement and a median table at the end.
MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.ceph import CephRGW
from tests.support.registry import RunningRegistry, default_config, filesystem_storage, merge, s3_storage

MIB = 1 << 20
PIECE = MIB
QUIET = {"log": {"level": "error", "accesslog": {"disabled": True}}}


def read_pieces(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(start)
        position = start
        while position < end:
            piece = source.read(min(PIECE, end - position))
            position += len(piece)
            yield piece


def push_monolithic(http: httpx.Client, repo: str, blob: Path, size: int, digest: str) -> None:
    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    response = http.put(
        started.headers["Location"],
        params={"digest": digest},
        content=read_pieces(blob, 0, size),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text


def push_chunked(http: httpx.Client, repo: str, blob: Path, size: int, digest: str, chunk: int) -> None:
    started = http.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    for first in range(0, size, chunk):
        last = min(first + chunk, size) - 1
        response = http.patch(
            location,
            content=read_pieces(blob, first, last + 1),
            headers={
                "Content-Length": str(last - first + 1),
                "Content-Range": f"{first}-{last}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{last}"
        location = response.headers["Location"]
    response = http.put(location, params={"digest": digest})
    assert response.status_code == 201, response.text


def pull(http: httpx.Client, repo: str, source: mmap.mmap, digest: str) -> bool:
    """GET the blob (following a redirect); True if it was redirected. Every byte compared."""
    position = 0
    with http.stream("GET", f"/v2/{repo}/blobs/{digest}", follow_redirects=True) as response:
        assert response.status_code == 200, response.read()
        for piece in response.iter_raw(PIECE):
            assert source[position : position + len(piece)] == piece, f"bytes differ after {position}"
            position += len(piece)
    assert position == len(source), (position, len(source))
    return bool(response.history)


class Backend:
    """One registry under test, and how to remove a blob's bytes behind its back."""

    def __init__(self, name: str, registry: RunningRegistry, rgw: CephRGW | None) -> None:
        self.name = name
        self.registry = registry
        self.rgw = rgw

    def forget(self, http: httpx.Client, repo: str, digest: str) -> None:
        """Delete the blob through the API and its stored bytes, so the next push stores it anew
        (the registry skips storing content it already holds)."""
        assert http.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
        algorithm, hex_digest = digest.split(":")
        key = f"docker/registry/v2/blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}"
        storage = self.registry.config["storage"]
        if self.rgw is None:
            shutil.rmtree(Path(storage["filesystem"]["rootdirectory"]) / key)
        else:
            self.rgw.client().delete_object(Bucket=storage["s3"]["bucket"], Key=f"{key}/data")


def measure(
    backend: Backend, repetition: int, blob: Path, source: mmap.mmap, digest: str, chunk: int
) -> Iterator[tuple[str, float]]:
    """(case, seconds) of each transfer, the blob forgotten between pushes."""
    size = len(source)
    repo = f"bench/{repetition}-{backend.name.replace(' ', '').replace(',', '-')}"
    with httpx.Client(base_url=backend.registry.url, timeout=600) as http:
        started = time.perf_counter()
        push_monolithic(http, repo, blob, size, digest)
        yield "push, monolithic PUT", time.perf_counter() - started
        backend.forget(http, repo, digest)
        started = time.perf_counter()
        push_chunked(http, repo, blob, size, digest, chunk)
        yield f"push, chunked PATCH {chunk // MIB} MiB", time.perf_counter() - started
        started = time.perf_counter()
        redirected = pull(http, repo, source, digest)
        yield "pull, full GET" + (" via redirect" if redirected else ""), time.perf_counter() - started
        backend.forget(http, repo, digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("-n", "--repetitions", type=int, default=3)
    parser.add_argument("--chunk-mib", type=int, default=16)
    args = parser.parse_args()
    size, chunk = args.size_mib * MIB, args.chunk_mib * MIB
    workdir = Path(tempfile.mkdtemp(prefix="bench-s3-transfer-"))
    blob = workdir / "blob"
    hasher = hashlib.sha256()
    with blob.open("wb") as out:
        for first in range(0, size, 16 * MIB):
            data = os.urandom(min(16 * MIB, size - first))
            hasher.update(data)
            out.write(data)
    digest = f"sha256:{hasher.hexdigest()}"

    rgw = CephRGW(workdir / "ceph").start()
    backends: list[Backend] = []
    results: dict[tuple[str, str], list[float]] = {}
    try:
        s3 = s3_storage(rgw)["s3"]
        storages: list[tuple[str, dict[str, Any], CephRGW | None]] = [
            ("filesystem", filesystem_storage(workdir / "fs"), None),
            ("s3", {"s3": s3}, rgw),
            ("s3, redirect disabled", {"s3": s3, "redirect": {"disable": True}}, rgw),
        ]
        for number, (name, storage, gateway) in enumerate(storages):
            (workdir / f"registry-{number}").mkdir()
            config = merge(default_config(storage=storage), QUIET)
            registry = RunningRegistry(workdir / f"registry-{number}", config, 2).start()
            backends.append(Backend(name, registry, gateway))
        with (
            blob.open("rb") as source_file,
            mmap.mmap(source_file.fileno(), 0, access=mmap.ACCESS_READ) as source,
        ):
            for repetition in range(args.repetitions):
                # Interleaved, reversed every other time: background load hits every backend alike.
                for backend in backends if repetition % 2 == 0 else backends[::-1]:
                    for case, seconds in measure(backend, repetition, blob, source, digest, chunk):
                        results.setdefault((backend.name, case), []).append(seconds)
                        line = {"registry": backend.name, "case": case, "seconds": round(seconds, 2)}
                        print(json.dumps({**line, "mb_s": round(size / seconds / 1e6, 1)}), flush=True)
    finally:
        for backend in backends:
            backend.registry.stop()
        rgw.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.size_mib} MiB blob, {args.repetitions} repetitions, median MB/s (min-max):")
    for (name, case), timings in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        rates = [size / s / 1e6 for s in timings]
        print(f"  {case:28} {name:22} {statistics.median(rates):7.1f}  ({min(rates):.1f}-{max(rates):.1f})")


if __name__ == "__main__":
    main()
