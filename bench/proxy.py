"""The pull-through cache: one large layer pulled through Dockyard and through Distribution 3.1 as
caches of the same upstream, beside the same pull straight from the upstream.

```sh
.venv/bin/python -m bench.proxy                 # 1 GiB layer, 3 repetitions; writes bench/PROXY.md
.venv/bin/python -m bench.proxy --quick         # 256 MiB, 1 repetition; prints only
```

The upstream is Debian's ``docker-registry`` (Distribution 2.8) on loopback. Each repetition
starts every cache afresh on an empty storage root (untimed) and times, in MB/s:

- cold: the first GET of the layer, which the cache fetches from the upstream while it serves it;
- first warm: the next GET, served from the cache, its files dropped from the page cache first:
  the first read from disk after the cold pull's writes, which costs several times the CPU of
  later reads in every registry (the kernel finding memory for it);
- warm: ``--rounds`` more such GETs, interleaved with the ordinary pulls below (warm first, then
  ordinary first, and so on), each read from disk as well;
- cold, N clients: N clients GET the cold layer at once (aggregate MB/s, and the upstream's blob
  GETs counted in its access log);
- and, as the reference lines, the GET straight from the upstream, the same GET through nginx
  relaying to the upstream (``proxy_pass``, nothing stored: what a third process in the path costs
  on the same CPUs) and (Dockyard) the GET of another layer of the same size pushed to an
  ordinary repository of the cache (another, so that it too is read for the first time).

Every download is compared byte for byte with the source file. Servers run interleaved, A then B
then B then A, so that whatever else the machine does hits all alike.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.api import push_monolithic
from bench.data import Region, UniqueBlob, write_random_file
from bench.http import FileComparer, HTTPError
from bench.servers import Server, find_distribution3, start_nginx, start_registry

REPOSITORY = "bench/layer"
LOCAL_REPOSITORY = "local/layer"
MB = 1e6
CPU_ROWS = ("cold", "first warm", "warm", "ordinary")
UPSTREAM_LOG = {"log": {"level": "info", "accesslog": {"disabled": False}}}


@dataclass
class Rows:
    """MB/s per (row, server), one value per repetition."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    upstream_gets: dict[str, list[int]] = field(default_factory=dict)

    def add(self, row: str, server: str, value: float) -> None:
        self.values.setdefault((row, server), []).append(value)

    def median(self, row: str, server: str) -> float | None:
        found = self.values.get((row, server))
        return statistics.median(found) if found else None


def pull(server: Server, repository: str, blob: UniqueBlob) -> float:
    """Seconds one GET of the whole blob takes, every byte checked."""
    comparer = FileComparer(str(blob.region.path), blob.region.offset, blob.size)
    try:
        began = time.perf_counter()
        with server.connect() as connection:
            connection.request("GET", f"/v2/{repository}/blobs/{blob.digest}", sink=comparer).expect(200)
        took = time.perf_counter() - began
    finally:
        comparer.close()
    if not comparer.verified():
        raise HTTPError(f"{server.name}: the pulled blob differs at {comparer.mismatch_at}")
    return took


def pull_together(server: Server, repository: str, blob: UniqueBlob, clients: int) -> float:
    """Seconds until ``clients`` simultaneous GETs of the blob have all finished."""
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def one() -> None:
        start.wait()
        try:
            pull(server, repository, blob)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def blob_gets(upstream: Server, blob: UniqueBlob) -> int:
    return len(re.findall(rf'"GET /v2/{REPOSITORY}/blobs/{blob.digest} ', upstream.log_path.read_text()))


def process_cpu(server: Server) -> float:
    """CPU seconds the server's process and its workers used so far (Linux /proc), steadier on a
    busy machine than the wall time of a pull."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [server.pid]
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            pids += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue  # gone meanwhile
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def settle() -> None:
    """Flush what the last case wrote so that its writeback does not slow the next one."""
    os.sync()


def from_disk(root: Path) -> None:
    """Drop the files under ``root`` from the page cache, so that the next pull reads the disk.

    Without this a pull may read the memory an earlier one filled; and a cache that writes
    through the page cache would be measured against one that does not."""
    settle()  # only clean pages can be dropped
    for directory, _, files in os.walk(root):
        for file in files:
            try:
                fd = os.open(os.path.join(directory, file), os.O_RDONLY)
            except OSError:
                continue  # gone meanwhile
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run(args: argparse.Namespace) -> str:
    size = (256 if args.quick else args.size) << 20
    repetitions = 1 if args.quick else args.n
    workdir = Path(tempfile.mkdtemp(prefix="bench-proxy-", dir=args.tmpdir))
    distribution3, missing = find_distribution3(args.distribution3)
    if distribution3 is None:
        print(f"Distribution 3.1 left out: {missing}")
    source = workdir / "layer.bin"
    write_random_file(source, size)
    region = Region.of(source, 0, size)
    blob = UniqueBlob(region, b"", region.digest)
    pushed_source = workdir / "pushed.bin"  # another layer of the same size, for ordinary pulls
    write_random_file(pushed_source, size)
    pushed_region = Region.of(pushed_source, 0, size)
    pushed = UniqueBlob(pushed_region, b"", pushed_region.digest)
    rows = Rows()
    upstream = start_registry("distribution", "upstream", workdir / "upstream", None, extra=UPSTREAM_LOG)
    upstream_url = f"http://{upstream.host}:{upstream.port}"
    relay: Server | None = None
    try:
        relay = start_nginx(workdir / "relay", workdir, proxy_to=upstream_url)
        with upstream.connect() as connection, source.open("rb") as file:
            push_monolithic(connection, REPOSITORY, blob, file)
        caches: dict[str, Callable[[Path], Server]] = {
            "Dockyard": lambda where: start_registry(
                "dockyard",
                "Dockyard",
                where,
                args.workers,
                extra={"proxy": {"upstreams": [{"prefix": "hub", "remoteurl": upstream_url, "ttl": "0"}]}},
            ),
        }
        if distribution3 is not None:
            caches["Distribution 3.1"] = lambda where: start_registry(
                "distribution3",
                "Distribution 3.1",
                where,
                None,
                binary=distribution3,
                extra={"proxy": {"remoteurl": upstream_url}},
            )
        names = list(caches)
        for repetition in range(repetitions):
            order = names if repetition % 2 == 0 else names[::-1]
            rows.add("direct", "upstream", size / pull(upstream, REPOSITORY, blob) / MB)
            rows.add("relayed", "upstream", size / pull(relay, REPOSITORY, blob) / MB)
            for name in order:
                measure_cache(
                    rows, name, caches[name], workdir / f"{name}-{repetition}", upstream, blob, pushed, args
                )
            print(f"repetition {repetition + 1} of {repetitions} done", flush=True)
    finally:
        if relay is not None:
            relay.stop()
        upstream.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(rows, names, size, repetitions, args.clients)


def measure_cache(
    rows: Rows,
    name: str,
    start: Callable[[Path], Server],
    where: Path,
    upstream: Server,
    blob: UniqueBlob,
    pushed: UniqueBlob,
    args: argparse.Namespace,
) -> None:
    repository = f"hub/{REPOSITORY}" if name == "Dockyard" else REPOSITORY
    size = blob.size
    for case in ("single", "together"):
        cache = start(where / case)
        assert cache.storage_root is not None  # filesystem storage: started with one
        try:
            settle()
            before = blob_gets(upstream, blob)
            if case == "single":
                cpu = process_cpu(cache)
                rows.add("cold", name, size / pull(cache, repository, blob) / MB)
                rows.add("cold cpu", name, process_cpu(cache) - cpu)
                pulls = [("warm", repository, blob)]
                if name == "Dockyard":
                    with cache.connect() as connection, pushed.region.path.open("rb") as file:
                        push_monolithic(connection, LOCAL_REPOSITORY, pushed, file)
                    pulls.append(("ordinary", LOCAL_REPOSITORY, pushed))
                # The first read from disk after the cold pull's writes costs several times the CPU
                # of later ones, in both registries and whichever layer it reads (the kernel finding
                # memory for it): a row of its own, before the interleaved rounds.
                measure_pull(rows, "first warm", name, cache, repository, blob)
                for round_ in range(args.rounds):  # interleaved: warm first, then ordinary first
                    for row, source, pulled in pulls if round_ % 2 == 0 else pulls[::-1]:
                        measure_pull(rows, row, name, cache, source, pulled)
            else:
                took = pull_together(cache, repository, blob, args.clients)
                rows.add("together", name, args.clients * size / took / MB)
                time.sleep(1.0)  # the access log line of the last GET is written as it ends
                rows.upstream_gets.setdefault(name, []).append(blob_gets(upstream, blob) - before)
        finally:
            cache.stop()
            shutil.rmtree(where / case, ignore_errors=True)


def measure_pull(rows: Rows, row: str, name: str, cache: Server, repository: str, blob: UniqueBlob) -> None:
    """One pull read from disk: MB/s and the CPU seconds of the server's processes."""
    assert cache.storage_root is not None
    from_disk(cache.storage_root)
    cpu = process_cpu(cache)
    rate = blob.size / pull(cache, repository, blob) / MB
    cpu = process_cpu(cache) - cpu
    rows.add(row, name, rate)
    rows.add(f"{row} cpu", name, cpu)
    print(f"  {name}: {row} {rate:,.0f} MB/s, {cpu:.2f} CPU s", flush=True)


def report(rows: Rows, names: list[str], size: int, repetitions: int, clients: int) -> str:
    direct = rows.median("direct", "upstream") or 0.0

    def cell(row: str, name: str, against: float | None) -> str:
        value = rows.median(row, name)
        if value is None:
            return "-"
        return f"{value:,.0f}" + (f" ({value / against:.2f}x)" if against else "")

    ordinary = rows.median("ordinary", "Dockyard")
    lines = [
        f"Layer of {size >> 20} MiB, median of {repetitions} repetition(s), MB/s; in brackets the "
        "ratio to the reference line named in the row.",
        "",
        "| Row | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
        f"| direct from the upstream (reference) | {direct:,.0f}" + " | -" * (len(names) - 1) + " |",
        "| through nginx `proxy_pass`, storing nothing (vs direct) | "
        + cell("relayed", "upstream", direct)
        + " | -" * (len(names) - 1)
        + " |",
        "| cold pull through the cache (vs direct) | "
        + " | ".join(cell("cold", name, direct) for name in names)
        + " |",
        "| ordinary pull of the layer pushed to the registry (reference) | "
        + " | ".join(cell("ordinary", name, None) for name in names)
        + " |",
        "| warm pull through the cache (vs ordinary pull) | "
        + " | ".join(cell("warm", name, ordinary) for name in names)
        + " |",
        "| first warm pull, the first read after the cold pull's writes (vs ordinary pull) | "
        + " | ".join(cell("first warm", name, ordinary) for name in names)
        + " |",
        f"| cold pull, {clients} clients at once, aggregate (vs direct) | "
        + " | ".join(cell("together", name, direct) for name in names)
        + " |",
        "| CPU seconds of the server's processes per pull: cold, first warm, warm, ordinary | "
        + " | ".join(
            ", ".join(f"{rows.median(f'{row} cpu', name) or 0:.2f}" for row in CPU_ROWS) for name in names
        )
        + " |",
        f"| upstream blob GETs for the {clients} clients | "
        + " | ".join(
            ", ".join(str(count) for count in rows.upstream_gets.get(name, [])) or "-" for name in names
        )
        + " |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="layer size in MiB (default 1024)")
    parser.add_argument("-n", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="256 MiB, one repetition")
    parser.add_argument("--clients", type=int, default=8, help="clients of the cold layer at once")
    parser.add_argument("--rounds", type=int, default=3, help="warm and ordinary pulls per repetition")
    parser.add_argument("--workers", type=int, default=None, help="Dockyard workers (default its own)")
    parser.add_argument("--distribution3", type=Path, default=None, help="Distribution 3.1's registry")
    parser.add_argument("--tmpdir", default=None, help="where the servers keep their storage")
    parser.add_argument("--output", type=Path, default=None, help="write the table here too")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args()
    table = run(args)
    print(table)
    if args.output is not None:
        args.output.write_text(table)


if __name__ == "__main__":
    main()
