"""What observing a request costs: server CPU per small request with the observing layer left out,
with the access log, and with the access log and metrics, interleaved in one run.

```sh
.venv/bin/python -m bench.observe                   # 5 rounds of 3 s per row and variant
.venv/bin/python -m bench.observe -n 3 --seconds 2 --only base,head-blob
.venv/bin/python -m bench.observe --baseline /tmp/before --variants bare,log,metrics
.venv/bin/python -m bench.observe --bytecodes --variants log,metrics --baseline /tmp/before
```

Every variant is Dockyard from this checkout on one store, started at once:

- ``bare``: the observing layer (``Observe``: access log, request id, metrics, events) left out,
  the public application served as it is: the floor the others are compared with.
- ``quiet``: observed, access log disabled (what ``bench/run`` measures).
- ``log``: observed with the access log on (text lines to a file), metrics off: the default.
- ``json``: as ``log`` with ``log.formatter: json``.
- ``metrics``: as ``log`` with Prometheus metrics on the debug listener.

With ``--baseline DIR`` (a checkout of another commit, e.g. ``git archive COMMIT | tar -x -C
DIR``) every variant also runs from that source, in the same interleaved rounds: before and after.

With ``--bytecodes``, in process too, each row's figure is the Python bytecodes a request
executes: it leaves out C code (bisect, dict lookups, the system calls) but no load on the
machine moves it, so a difference of a few dozen is real.

With ``--in-process`` each variant is instead ``bench.asgi_cost``: the same requests through the
ASGI application in one process (no sockets), CPU from ``time.process_time``, one process per
variant and source, interleaved; far steadier on a busy machine, and it leaves out the server's
fixed cost (uvicorn, the event loop, the system calls), so its differences are the code's own.

CPU is read per thread from ``/proc/PID/task/TID/schedstat`` (nanoseconds) for every process of
each server, before and after each load; per request it is steadier than throughput on a shared
machine. The load is ``bench.small``'s (wrk, or ``bench.loadgen`` for HEAD) at concurrency 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.procstat import PROC, process_tree
from bench.servers import PROJECT, Server, _spawn, registry_config
from bench.settings import quick
from bench.summary import spread
from bench.workloads.small import Endpoint, SmallRequests
from tests.support.processes import free_port

VARIANTS = ("bare", "quiet", "log", "json", "metrics")
ROWS = ("base", "head-blob", "manifest-tag")

BARE_LAUNCHER = """\
import sys
from registry.observability.compose import Observability
Observability.application = lambda self, public, *args, **kwargs: public
from registry.cli import main
main(sys.argv[1:])
"""
"""``dockyard serve`` with the observing layer replaced by the application it wraps."""


def variant_config(variant: str, root: Path, port: int) -> dict[str, Any]:
    config = registry_config(root, port)
    if variant in {"log", "json", "metrics"}:
        config["log"] = {"level": "info", "accesslog": {"disabled": False}}
    if variant == "json":
        config["log"]["formatter"] = "json"
    if variant == "metrics":
        config["http"]["debug"] = {"addr": f"127.0.0.1:{free_port()}", "prometheus": {"enabled": True}}
    return config


def start(variant: str, workdir: Path, root: Path, workers: int, source: Path = PROJECT) -> Server:
    """``variant`` of the registry whose code is in ``source``."""
    workdir.mkdir(parents=True)
    port = free_port()
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(variant_config(variant, root, port)))
    launcher = ["-c", BARE_LAUNCHER] if variant == "bare" else ["-m", "registry"]
    command = [sys.executable, *launcher, "serve", str(config_path), "--workers", str(workers)]
    # The source's packages first, before the ones installed in the virtualenv.
    command = ["env", f"PYTHONPATH={source.resolve()}", *command]
    process = _spawn(command, workdir, cwd=source)
    return Server(workdir.name, port, workdir, process, storage_root=root).ready()


def tree_cpu_ns(root: int) -> int:
    """CPU time of every thread of ``root``'s process tree, in nanoseconds."""
    total = 0
    for pid in process_tree(root):
        try:
            tasks = list((PROC / str(pid) / "task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.observe", description=__doc__.partition("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows, of {', '.join(ROWS)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--baseline", type=Path, help="another checkout: each variant from it too")
    parser.add_argument("--in-process", action="store_true", help="through the ASGI app, no sockets")
    parser.add_argument("--count", type=int, default=5000, help="requests per row in process")
    parser.add_argument(
        "--bytecodes", action="store_true", help="in process: Python bytecodes per request, not CPU"
    )
    args = parser.parse_args(argv)
    rows = args.only.split(",")
    sources = [("", PROJECT)] + ([("@base", args.baseline)] if args.baseline else [])
    variants = [variant + suffix for suffix, _ in sources for variant in args.variants.split(",")]
    with tempfile.TemporaryDirectory(prefix="dockyard-observe-") as temp:
        workdir = Path(temp)
        small = SmallRequests(quick(), workdir)
        endpoints = [endpoint for endpoint in small.endpoints if endpoint.key in rows]
        if args.in_process or args.bytecodes:
            in_process_cpu = in_process(args, small, endpoints, variants, workdir)
            if args.bytecodes:
                print("Python bytecodes per request through the ASGI application (200 requests per row).\n")
            else:
                print("CPU per request through the ASGI application, µs: median (min to max)")
                print(f"of {args.rounds} rounds of {args.count} requests per row.\n")
            table(endpoints, variants, in_process_cpu, None)
            return
        servers: list[Server] = []
        try:
            for variant in variants:
                # One store each: the same content, and no variant warms another's caches.
                kind, _, base = variant.partition("@")
                source = args.baseline if base else PROJECT
                server = start(kind, workdir / variant, workdir / variant / "storage", args.workers, source)
                servers.append(server)
                small.store(server)
            cpu: dict[tuple[str, str], list[float]] = {}
            rate: dict[tuple[str, str], list[float]] = {}
            for endpoint in endpoints:
                for server in servers:
                    small.load(server, endpoint, 1, 1)  # warm
            for number in range(args.rounds):
                order = servers if number % 2 == 0 else servers[::-1]
                for endpoint in endpoints:
                    for server in order:
                        before = tree_cpu_ns(server.pid)
                        outcome = small.load(server, endpoint, 1, args.seconds)
                        used = tree_cpu_ns(server.pid) - before
                        key = (endpoint.key, server.name)
                        cpu.setdefault(key, []).append(used / 1000 / outcome.extra["requests"])
                        rate.setdefault(key, []).append(outcome.value)
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    print(f"Server CPU per request at concurrency 1, µs: median (min to max) of {args.rounds} rounds")
    print(f"of {args.seconds} s, {args.workers} workers; req/s median in brackets.\n")
    table(endpoints, variants, cpu, rate)


def table(
    endpoints: list[Endpoint],
    variants: list[str],
    cpu: dict[tuple[str, str], list[float]],
    rate: dict[tuple[str, str], list[float]] | None,
) -> None:
    print("| Row | " + " | ".join(variants) + " |")
    print("| --- |" + " --- |" * len(variants))
    for endpoint in endpoints:
        cells = []
        for variant in variants:
            cell = spread(cpu[(endpoint.key, variant)], 1)
            if rate is not None:
                cell += f" [{statistics.median(rate[(endpoint.key, variant)]):,.0f}]"
            cells.append(cell)
        print(f"| {endpoint.label} | " + " | ".join(cells) + " |")


def in_process(
    args: argparse.Namespace,
    small: SmallRequests,
    endpoints: list[Endpoint],
    variants: list[str],
    workdir: Path,
) -> dict[tuple[str, str], list[float]]:
    """Every variant's rows through ``bench.asgi_cost``, on one store a server filled."""
    root = workdir / "storage"
    filler = start("quiet", workdir / "filler", root, 1)
    try:
        small.store(filler)
    finally:
        filler.stop()
    requests = [[e.key, e.method, e.path, [list(header) for header in e.headers]] for e in endpoints]
    cpu: dict[tuple[str, str], list[float]] = {}
    for number in range(1 if args.bytecodes else args.rounds):  # bytecodes: the same every round
        for variant in variants if number % 2 == 0 else variants[::-1]:
            kind, _, base = variant.partition("@")
            source = (args.baseline if base else PROJECT).resolve()
            config = workdir / f"{variant}.yml"
            config.write_text(yaml.safe_dump(variant_config(kind, root, free_port())))
            spec = {
                "config": str(config), "bare": kind == "bare", "requests": requests,
                "count": args.count, "log": str(workdir / f"{variant}.log"), "bytecodes": args.bytecodes,
            }  # fmt: skip
            finished = subprocess.run(
                # -P: not bench/ first on the path, where http.py would hide the standard one.
                [sys.executable, "-P", str(PROJECT / "bench" / "asgi_cost.py"), json.dumps(spec)],
                env={**os.environ, "PYTHONPATH": str(source)},
                cwd=source,
                capture_output=True,
                text=True,
                check=True,
            )
            for key, value in json.loads(finished.stdout).items():
                cpu.setdefault((key, variant), []).append(value)
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    return cpu


if __name__ == "__main__":
    main()
