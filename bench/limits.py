"""The machine's ceilings, measured in the same run as the registries."""

from __future__ import annotations

import hashlib
import mmap
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.http import FileComparer, HTTPError
from bench.servers import start_nginx
from tests.support.tls import ServerCertificates

PIECE = 16 << 20
DIRECT_PIECE = 4 << 20
MB = 1e6


@dataclass
class Limits:
    sha256_mbps: float
    disk_fsync_mbps: float
    disk_direct_mbps: float
    nginx_mbps: float  # received with the same verifying client as the blob pulls
    nginx_discard_mbps: float  # received and thrown away: the loopback ceiling itself
    nginx_tls_mbps: float  # over TLS (the shipped site's settings), verifying client


def sha256_speed(total: int) -> float:
    """hashlib over 16 MiB buffers on one thread."""
    buffer = os.urandom(PIECE)
    state = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(total // PIECE):
        state.update(buffer)
    return total / (time.perf_counter() - started) / MB


def disk_speed(directory: Path, total: int, direct: bool = False) -> float:
    """Write ``total`` random bytes and fsync, in the benchmark's filesystem: 16 MiB buffered
    writes, or (``direct``) 4 MiB ``O_DIRECT`` writes from page-aligned memory, as the registry
    writes uploads."""
    size = DIRECT_PIECE if direct else PIECE
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    buffer[:] = os.urandom(size)
    path = directory / "disk-speed.tmp"
    os.sync()  # start without other dirty pages queued ahead of ours
    started = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags, 0o600)
    try:
        for _ in range(total // size):
            os.write(fd, buffer)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    path.unlink()
    return total / elapsed / MB


def nginx_speed(
    workdir: Path, file: Path, certificates: ServerCertificates | None = None, repetitions: int = 3
) -> tuple[float, float]:
    """Median MB/s of a full GET of ``file`` from a private nginx with sendfile (over TLS with
    ``certificates``).

    Measured twice: with the byte-for-byte check the blob pulls use, and discarding the bytes.
    """
    nginx = start_nginx(workdir / ("nginx-tls" if certificates else "nginx"), file.parent, certificates)
    size = file.stat().st_size
    verified, discarded = [], []
    try:
        with nginx.connect() as connection:
            connection.request("GET", f"/{file.name}", headers={"Range": "bytes=0-0"})  # warm
            for _ in range(repetitions):
                comparer = FileComparer(str(file), 0, size)
                try:
                    started = time.perf_counter()
                    response = connection.request("GET", f"/{file.name}", sink=comparer)
                    verified.append(size / (time.perf_counter() - started) / MB)
                finally:
                    comparer.close()
                response.expect(200)
                if not comparer.verified():
                    raise HTTPError("nginx served other bytes than the file")
                started = time.perf_counter()
                response = connection.request("GET", f"/{file.name}", sink=lambda piece: None)
                discarded.append(size / (time.perf_counter() - started) / MB)
                response.expect(200)
    finally:
        nginx.stop()
    return statistics.median(verified), statistics.median(discarded)


def measure_limits(workdir: Path, file: Path, total: int, certificates: ServerCertificates) -> Limits:
    verified, discarded = nginx_speed(workdir, file)
    tls_verified, _ = nginx_speed(workdir, file, certificates)
    return Limits(
        sha256_mbps=sha256_speed(total),
        disk_fsync_mbps=disk_speed(workdir, total),
        disk_direct_mbps=disk_speed(workdir, total, direct=True),
        nginx_mbps=verified,
        nginx_discard_mbps=discarded,
        nginx_tls_mbps=tls_verified,
    )
