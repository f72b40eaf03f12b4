"""First pushes to new repositories from this checkout against another, and Distribution 3.1,
interleaved: the server CPU each repository costs, before and after a change.

```sh
git archive COMMIT | tar -x -C /tmp/before                  # the code to compare with
.venv/bin/python -m bench.repositories_ab --baseline /tmp/before \\
    --distribution3 /tmp/anchors/registry-3.1.1 -n 5 --count 1000
```

Each round runs ``bench/run``'s ``new-repositories`` work (per repository a HEAD of the layer,
two mounts, the manifest PUT; 8 connections) on every server, the order reversed every other
round, each in a fresh namespace, set aside (not deleted) after it as ``bench/run`` does. It
prints per server the median (min to max) of the seconds, the server's CPU seconds (for
Dockyard split into the workers' event loop threads and every other thread) and the CPU per
repository. ``--phases``: each round makes its repositories one kind of request at a time
(every HEAD, then every first mount, every second mount, every manifest PUT) and prints the
server's CPU per request of each kind.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.api import mount_blob, put_manifest
from bench.http import Connection, HTTPError
from bench.measure import measure
from bench.observe import start
from bench.parallel import over_connections
from bench.procstat import RssSampler, cpu_seconds, process_tree
from bench.push_ab import loop_and_threads, split_cpu
from bench.servers import PROJECT, Server, start_registry
from bench.settings import Settings
from bench.summary import spread
from bench.workloads.repositories import SOURCE, NewRepositories

Results = dict[str, dict[str, list[float]]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.repositories_ab", description=__doc__.partition("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=1000, help="repositories per round and server")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured beside this one")
    parser.add_argument("--distribution3", type=Path, help="Distribution 3.1's registry binary")
    parser.add_argument("--tmpdir", type=Path, help="where the stores go")
    parser.add_argument("--phases", action="store_true", help="CPU per request, each kind in a phase")
    args = parser.parse_args(argv)
    settings = Settings(repetitions=args.rounds, new_repositories=args.count)
    sources = [("after", PROJECT)] + ([("before", args.baseline)] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="dockyard-repositories-ab-", dir=args.tmpdir) as temp:
        workdir = Path(temp)
        workload = NewRepositories(settings)
        sampler = RssSampler()
        servers: list[Server] = []
        try:
            for name, source in sources:
                servers.append(
                    start("quiet", workdir / name, workdir / name / "storage", args.workers, source)
                )
            if args.distribution3 is not None:
                servers.append(
                    start_registry("distribution3", "3.1", workdir / "3.1", 1, binary=args.distribution3)
                )
            for server in servers:
                sampler.watch(server.name, server.pid)
                workload.setup(server)
            sampler.start()
            if args.phases:
                results = phased_rounds(args.rounds, workload, servers, settings)
            else:
                results = rounds(args.rounds, workload, servers, sampler, settings)
        finally:
            sampler.stop()
            for server in servers:
                server.stop()
        # Before the stores go: removing some 20 files and directories a repository takes minutes.
        report([server.name for server in servers], results, args.count)


def rounds(
    count: int, workload: NewRepositories, servers: list[Server], sampler: RssSampler, settings: Settings
) -> Results:
    (case,) = workload.cases()
    results: Results = {}
    for number in range(count):
        for server in servers if number % 2 == 0 else servers[::-1]:
            before = split_cpu(server)
            observation = measure(server, sampler, case)
            loop, threads = loop_and_threads(before, split_cpu(server))
            row = results.setdefault(server.name, {})
            row.setdefault("seconds", []).append(observation.value)
            row.setdefault("server CPU, s", []).append(observation.server_cpu)
            row.setdefault("main threads, s", []).append(loop)
            row.setdefault("other threads, s", []).append(threads)
            per_repository = 1e6 * observation.server_cpu / settings.new_repositories
            row.setdefault("CPU per repository, µs", []).append(per_repository)
            row.setdefault("other load, cores", []).append(observation.other_cpu / observation.wall)
        print(f"round {number + 1}/{count} done", file=sys.stderr)
    return results


PHASES = ("HEAD of the layer (404)", "first mount", "second mount", "manifest PUT")
_phase_rounds = itertools.count()


def phased_rounds(
    count: int, workload: NewRepositories, servers: list[Server], settings: Settings
) -> Results:
    results: Results = {}
    for number in range(count):
        for server in servers if number % 2 == 0 else servers[::-1]:
            namespace = f"newrepo-phases-{next(_phase_rounds)}"
            names = [f"{namespace}/repo-{i:05d}" for i in range(settings.new_repositories)]
            for phase, work in zip(PHASES, phase_work(workload), strict=True):
                before = cpu_seconds(process_tree(server.pid))
                over_connections(server, settings.setup_connections, names, work)
                used = cpu_seconds(process_tree(server.pid)) - before
                row = results.setdefault(server.name, {})
                row.setdefault(f"{phase}, µs", []).append(1e6 * used / len(names))
            NewRepositories.remove(server, namespace)()
        print(f"round {number + 1}/{count} done", file=sys.stderr)
    return results


def phase_work(workload: NewRepositories) -> list[Callable[[Connection, str], None]]:
    def head(connection: Connection, name: str) -> None:
        response = connection.request("HEAD", f"/v2/{name}/blobs/{workload.layer_digest}")
        if response.status != 404:
            raise HTTPError(f"HEAD of a blob in the new repository {name} answered {response.status}")

    def first(connection: Connection, name: str) -> None:
        mount_blob(connection, name, workload.layer_digest, SOURCE)

    def second(connection: Connection, name: str) -> None:
        mount_blob(connection, name, workload.config_digest, SOURCE)

    def manifest(connection: Connection, name: str) -> None:
        put_manifest(connection, name, "latest", workload.manifest)

    return [head, first, second, manifest]


def report(names: list[str], results: Results, count: int) -> None:
    print(f"{count} repositories a round")
    print("| measure | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for measure_name in results[names[0]]:
        digits = 0 if "µs" in measure_name else 2
        cells = [spread(results[name][measure_name], digits) for name in names]
        print(f"| {measure_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
