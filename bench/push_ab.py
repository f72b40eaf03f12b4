"""Pushes from this checkout against another, interleaved, with sha256 on one core measured in
every round: how close a monolithic push comes to the hashing limit, before and after a change.

```sh
git archive COMMIT | tar -x -C /tmp/before                  # the code to compare with
.venv/bin/python -m bench.push_ab --baseline /tmp/before -n 5
.venv/bin/python -m bench.push_ab --only push-monolithic -n 3 --size 256
```

Each round measures sha256 (hashlib, 16 MiB buffers, one thread) over the blob's size, then runs
every selected case on each Dockyard (``--workers``, default 2), the order reversed every other
round: ``push-monolithic`` (POST, one PUT of the whole blob), ``push-chunked`` (16 MiB PATCHes)
and ``pushers`` (16 clients pushing 32 MiB each at once), as ``bench/run`` measures them. It
prints per case and source the median (min to max) of MB/s, of the monolithic push's share of
that round's sha256 speed, and of the server's CPU seconds, split into the workers' event loop
threads and every other thread (hashing and writing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.data import Region, write_random_file
from bench.limits import sha256_speed
from bench.measure import Case, measure
from bench.observe import start
from bench.procstat import RssSampler, process_tree, thread_cpu_seconds
from bench.servers import PROJECT, Server
from bench.settings import MiB, Settings
from bench.summary import spread
from bench.workloads.blobs import LargeBlob
from bench.workloads.pushers import ConcurrentPushers

CASES = ("push-monolithic", "push-chunked", "pushers")


def split_cpu(server: Server) -> dict[tuple[int, int], float]:
    return thread_cpu_seconds(process_tree(server.pid))


def loop_and_threads(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float]
) -> tuple[float, float]:
    """CPU seconds between two samples: of the processes' main threads (the event loops) and of
    every other thread."""
    loop = threads = 0.0
    for (pid, tid), seconds in after.items():
        used = seconds - before.get((pid, tid), 0.0)
        if pid == tid:
            loop += used
        else:
            threads += used
    return loop, threads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.push_ab", description=__doc__.partition("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="MiB of the large blob")
    parser.add_argument("--only", default=",".join(CASES), help=f"cases, of {', '.join(CASES)}")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured beside this one")
    parser.add_argument("--tmpdir", type=Path, help="where the stores and the test file go")
    args = parser.parse_args(argv)
    settings = Settings(repetitions=args.rounds, blob_size=args.size * MiB)
    sources = [("after", PROJECT)] + ([("before", args.baseline)] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="dockyard-push-ab-", dir=args.tmpdir) as temp:
        workdir = Path(temp)
        path = workdir / "blob.bin"
        write_random_file(path, max(settings.blob_size, settings.pushers * settings.pusher_size))
        large = LargeBlob(settings, path, Region.of(path, 0, settings.blob_size))
        cases = [case for case in large.cases() if case.key in args.only.split(",")]
        if "pushers" in args.only.split(","):
            cases += ConcurrentPushers(settings, path).cases()
        sampler = RssSampler()
        servers: list[Server] = []
        try:
            for name, source in sources:
                server = start("quiet", workdir / name, workdir / name / "storage", args.workers, source)
                servers.append(server)
                sampler.watch(name, server.pid)
            sampler.start()
            results = rounds(args.rounds, cases, servers, sampler, settings)
        finally:
            sampler.stop()
            for server in servers:
                server.stop()
    report(cases, [name for name, _ in sources], results)


Results = dict[tuple[str, str], dict[str, list[float]]]


def rounds(
    count: int, cases: list[Case], servers: list[Server], sampler: RssSampler, settings: Settings
) -> Results:
    results: Results = {}
    for number in range(count):
        hashing = sha256_speed(settings.blob_size)
        for case in cases:
            for server in servers if number % 2 == 0 else servers[::-1]:
                before = split_cpu(server)
                observation = measure(server, sampler, case)
                loop, threads = loop_and_threads(before, split_cpu(server))
                row = results.setdefault((case.key, server.name), {})
                row.setdefault("MB/s", []).append(observation.value)
                row.setdefault("% of sha256", []).append(100 * observation.value / hashing)
                row.setdefault("server CPU, s", []).append(observation.server_cpu)
                row.setdefault("event loops, s", []).append(loop)
                row.setdefault("other threads, s", []).append(threads)
                row.setdefault("peak RSS, MB", []).append(observation.peak_rss / 1e6)
                row.setdefault("other load, cores", []).append(observation.other_cpu / observation.wall)
        print(f"round {number + 1}/{count} done (sha256 {hashing:,.0f} MB/s)", file=sys.stderr)
    return results


def report(cases: list[Case], names: list[str], results: Results) -> None:
    print("| case | measure | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for case in cases:
        for measure_name in results[(case.key, names[0])]:
            digits = 0 if measure_name in {"MB/s", "% of sha256", "peak RSS, MB"} else 2
            cells = [spread(results[(case.key, name)][measure_name], digits) for name in names]
            print(f"| {case.key} | {measure_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
