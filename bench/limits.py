"""The machine's ceilings, measured in the same run as the registries.

``python -m bench.limits`` measures the small-request limit on its own: GET ``/v2/`` from the
fastest Python servers this machine runs (``bench.floor``), from Dockyard and from Distribution
3.1, in interleaved rounds of wrk, with the servers' CPU per request and the machine's other
load during each run.
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.http import FileComparer, HTTPError
from bench.procstat import cpu_seconds, machine_task_seconds, own_cpu_seconds, process_tree
from bench.servers import Server, find_distribution3, start_floor, start_nginx, start_registry
from bench.summary import spread
from registry.cpus import usable_cpus
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
    python_base_rps: dict[int, float]  # GET /v2/ by concurrency from the bare uvloop protocol


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


def measure_limits(
    workdir: Path, file: Path, total: int, certificates: ServerCertificates, seconds: float
) -> Limits:
    verified, discarded = nginx_speed(workdir, file)
    tls_verified, _ = nginx_speed(workdir, file, certificates)
    return Limits(
        sha256_mbps=sha256_speed(total),
        disk_fsync_mbps=disk_speed(workdir, total),
        disk_direct_mbps=disk_speed(workdir, total, direct=True),
        nginx_mbps=verified,
        nginx_discard_mbps=discarded,
        nginx_tls_mbps=tls_verified,
        python_base_rps=python_server_speed(workdir / "floor", seconds),
    )


def python_server_speed(workdir: Path, seconds: float) -> dict[int, float]:
    """GET /v2/ at the small rows' concurrencies from the bare uvloop protocol with the
    registry's default worker count: the limit of a Python server on this machine."""
    server = start_floor("protocol", usable_cpus(), workdir)
    try:
        wrk_run(server, 1, 1)  # warm
        return {concurrency: wrk_run(server, concurrency, seconds).rate for concurrency in BASE_CONCURRENCIES}
    finally:
        server.stop()


@dataclass
class Run:
    """One wrk run against one server."""

    rate: float  # requests a second
    cpu_us: float  # the server's CPU per request, µs
    other_cores: float  # CPU of everything but the server and wrk, in cores


@dataclass
class Target:
    name: str
    start: Callable[[], Server]
    runs: dict[int, list[Run]] = field(default_factory=dict)  # by concurrency


BASE_CONCURRENCIES = (1, 16)
"""The GET /v2/ rows of ``bench/run`` (``base-c1``, ``base-c16``)."""
WRK_REQUESTS = re.compile(r"(\d+) requests in ")


def wrk_run(server: Server, concurrency: int, seconds: float) -> Run:
    """``wrk`` GET /v2/ at ``concurrency`` connections (two threads at most: two cores)."""
    tree = process_tree(server.pid)
    server_before, machine_before, client_before = (
        cpu_seconds(tree),
        machine_task_seconds(),
        own_cpu_seconds(),
    )
    started = time.perf_counter()
    command = ["wrk", f"-t{min(2, concurrency)}", f"-c{concurrency}", f"-d{seconds:g}s"]
    finished = subprocess.run(
        [*command, f"http://{server.host}:{server.port}/v2/"], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(tree) - server_before
    client_cpu = own_cpu_seconds() - client_before
    machine = machine_task_seconds() - machine_before
    found = WRK_REQUESTS.search(finished.stdout)
    if (
        finished.returncode != 0
        or found is None
        or "Non-2xx" in finished.stdout
        or "Socket errors" in finished.stdout
    ):
        raise HTTPError(f"wrk against {server.name}: {finished.stdout}{finished.stderr}")
    requests = int(found.group(1))
    rate = float(finished.stdout.split("Requests/sec:")[1].split()[0])
    other = max(0.0, machine - server_cpu - client_cpu) / wall
    return Run(rate, server_cpu / requests * 1e6, other)


def small_targets(workdir: Path, distribution3: Path | None) -> list[Target]:
    """The servers of the small-request limit, from the floor up, at one worker and at the
    registry's default worker count (one per usable CPU)."""
    cpus = usable_cpus()
    counts = sorted({1, cpus})

    def workers_text(workers: int) -> str:
        return f"{workers} worker{'s' if workers > 1 else ''}"

    targets = []
    for kind, label in (
        ("protocol", "uvloop protocol, fixed answer"),
        ("uvicorn", "uvicorn, trivial ASGI app"),
        ("registry-protocol", "the registry's protocol, trivial ASGI app"),
    ):
        for workers in counts:
            start = partial(start_floor, kind, workers, workdir / f"{kind}-{workers}")
            targets.append(Target(f"{label}, {workers_text(workers)}", start))
    for workers in counts:
        default = " (default)" if workers == cpus else ""
        start = partial(start_registry, "dockyard", "Dockyard", workdir / f"dockyard-{workers}", workers)
        targets.append(Target(f"Dockyard, {workers_text(workers)}{default}", start))
    start = partial(start_nginx, workdir / "nginx", workdir, fixed_base=True)
    targets.insert(0, Target("nginx, fixed answer, 1 worker (the load generator and loopback)", start))
    if distribution3 is not None:
        start = partial(
            start_registry,
            "distribution3",
            "Distribution 3.1",
            workdir / "distribution3",
            None,
            binary=distribution3,
        )
        targets.append(Target("Distribution 3.1", start))
    return targets


def measure_small(
    targets: list[Target], concurrencies: list[int], rounds: int, seconds: float, log: Callable[[str], None]
) -> None:
    """Rounds of one wrk run per server and concurrency, in alternating order, all servers
    running throughout (as in ``bench/run``)."""
    servers = [target.start() for target in targets]
    try:
        for server in servers:  # warm: first connections, lazy imports
            wrk_run(server, 1, 1)
        for number in range(rounds):
            order = list(zip(targets, servers, strict=True))
            for target, server in order if number % 2 == 0 else reversed(order):
                for concurrency in concurrencies:
                    run = wrk_run(server, concurrency, seconds)
                    target.runs.setdefault(concurrency, []).append(run)
                    log(
                        f"round {number + 1} {target.name} c{concurrency}: {run.rate:,.0f} req/s, "
                        f"{run.cpu_us:.1f} µs CPU, other load {run.other_cores:.2f} cores"
                    )
    finally:
        for server in servers:
            server.stop()


def small_table(targets: list[Target], concurrencies: list[int]) -> str:
    headings = []
    for concurrency in concurrencies:
        headings += [f"c{concurrency} req/s", f"c{concurrency} CPU µs/req"]
    headings.append("other load, cores")
    lines = ["| Server | " + " | ".join(headings) + " |", "| --- |" + " ---: |" * len(headings)]
    for target in targets:
        cells = []
        for concurrency in concurrencies:
            runs = target.runs[concurrency]
            cells += [spread([run.rate for run in runs]), spread([run.cpu_us for run in runs], 1)]
        cells.append(
            f"{statistics.median(run.other_cores for runs in target.runs.values() for run in runs):.2f}"
        )
        lines.append(f"| {target.name} | " + " | ".join(cells) + " |")
    others = [run.other_cores for target in targets for runs in target.runs.values() for run in runs]
    lines.append("")
    lines.append(
        f"Other load during the runs: median {statistics.median(others):.2f} cores, "
        f"at most {max(others):.2f} (of {os.cpu_count()})."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=3, help="seconds of each wrk run (default 3)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16], help="connections (default 1 16)"
    )
    parser.add_argument(
        "--distribution3", type=Path, metavar="PATH", help="Distribution 3.1's registry binary"
    )
    parser.add_argument(
        "--only", default="", help="servers whose name contains one of these, comma-separated"
    )
    args = parser.parse_args(argv)
    binary, missing = find_distribution3(args.distribution3)
    if binary is None:
        print(f"without Distribution 3.1: {missing}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as workdir:
        targets = small_targets(Path(workdir), binary)
        wanted = [word.strip() for word in args.only.split(",") if word.strip()]
        targets = [target for target in targets if not wanted or any(word in target.name for word in wanted)]
        measure_small(
            targets, args.concurrency, args.rounds, args.seconds, lambda line: print(line, file=sys.stderr)
        )
    print(small_table(targets, args.concurrency))


if __name__ == "__main__":
    main(sys.argv[1:])
