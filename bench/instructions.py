"""What metrics cost in instructions: one worker under ``valgrind --tool=callgrind``, its
instructions per request counted over a run of requests on one keep-alive connection, with
metrics off (``log``) and on (``metrics``). No load on the machine moves these counts, so a
change of a few hundred instructions per request shows where no timing could.

```sh
.venv/bin/python -m bench.instructions                      # every row, log and metrics
.venv/bin/python -m bench.instructions --only base --count 300 --repeat 5
.venv/bin/python -m bench.instructions --baseline /tmp/before   # another checkout's too
```

Two things that run on time, not per request, are held off, since under valgrind a request is
some 50 times slower and they would run in proportion to the machine's load: the metrics'
quarter-second flush (an hour here) and the blob descriptor cache's expiry (an hour), past which
HEAD blob reads storage again.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.observe import variant_config
from bench.servers import PROJECT, Server, _spawn
from bench.settings import quick
from bench.workloads.small import Endpoint, SmallRequests
from tests.support.processes import free_port

ROWS = ("head-blob", "manifest-tag", "base", "tags-list")
LAUNCHER = """\
import sys
from registry.observability import compose
compose.FLUSH_INTERVAL = 3600.0
from registry.cli import main
main(sys.argv[1:])
"""
"""``dockyard serve`` with the metrics' flush held off."""
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def start(variant: str, workdir: Path, root: Path, source: Path, valgrind: bool) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = variant_config(variant, root, port)
    config["storage"]["cache"]["blobdescriptorexpiry"] = "1h"
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-c", LAUNCHER, "serve", str(config_path), "--workers", "1"]
    if valgrind:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir}/callgrind.%p", *command]
    # One hash seed: the same dictionaries' probes and sets' orders in every run.
    command = ["env", f"PYTHONPATH={source.resolve()}", "PYTHONHASHSEED=0", *command]
    server = Server(workdir.name, port, workdir, _spawn(command, workdir, cwd=source), storage_root=root)
    return server.ready(timeout=600)  # callgrind slows start-up many times over


def dump(server: Server) -> int:
    """The instructions the server ran since its last dump."""
    before = set(server.workdir.glob("callgrind.*"))
    subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True, capture_output=True)
    [written] = set(server.workdir.glob("callgrind.*")) - before
    match = _TOTALS.search(written.read_text(errors="replace"))
    assert match is not None, f"no totals in {written}"
    return int(match.group(1))


def per_request(server: Server, endpoint: Endpoint, warm: int, count: int, repeat: int) -> float:
    """Instructions per request of ``endpoint``: the median of ``repeat`` runs of ``count``
    requests, after ``warm`` (what runs on time, the server's tick and the log's clock, moves
    one run by a few hundred)."""
    headers = dict(endpoint.headers)
    runs = []
    with server.connect() as connection:
        for _ in range(warm):
            connection.request(endpoint.method, endpoint.path, headers=headers).expect(200)
        dump(server)
        for _ in range(repeat):
            for _ in range(count):
                connection.request(endpoint.method, endpoint.path, headers=headers).expect(200)
            runs.append(dump(server) / count)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.instructions", description=__doc__.partition("\n")[0])
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows, of {', '.join(ROWS)}")
    parser.add_argument("--variants", default="log,metrics")
    parser.add_argument("--count", type=int, default=500, help="requests counted per row")
    parser.add_argument("--repeat", type=int, default=3, help="runs of --count per row (median)")
    parser.add_argument("--warm", type=int, default=200, help="requests before counting")
    parser.add_argument("--baseline", type=Path, help="another checkout: each variant from it too")
    args = parser.parse_args(argv)
    rows = args.only.split(",")
    sources = [("", PROJECT)] + ([("@base", args.baseline)] if args.baseline else [])
    figures: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="dockyard-instructions-") as temp:
        workdir = Path(temp)
        small = SmallRequests(quick(), workdir)
        endpoints = [endpoint for endpoint in small.endpoints if endpoint.key in rows]
        root = workdir / "storage"
        seeding = start("log", workdir / "seed", root, PROJECT, valgrind=False)
        try:
            small.store(seeding)
        finally:
            seeding.stop()
        for suffix, source in sources:
            for variant in args.variants.split(","):
                name = variant + suffix
                server = start(variant, workdir / name, root, source, valgrind=True)
                try:
                    for endpoint in endpoints:
                        figure = per_request(server, endpoint, args.warm, args.count, args.repeat)
                        figures[(endpoint.key, name)] = figure
                        print(f"{name} {endpoint.key}: {figure:,.0f}", file=sys.stderr)
                finally:
                    server.stop()
    names = [variant + suffix for suffix, _ in sources for variant in args.variants.split(",")]
    print(f"Instructions per request (callgrind): median of {args.repeat} runs of {args.count} requests.\n")
    added = [suffix for suffix, _ in sources if {"log", "metrics"} <= set(args.variants.split(","))]
    columns = names + [f"metrics added{suffix}" for suffix in added]
    print("| Row | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for endpoint in endpoints:
        cells = [f"{figures[(endpoint.key, name)] / 1000:,.1f}k" for name in names]
        for suffix in added:
            off, on = figures[(endpoint.key, "log" + suffix)], figures[(endpoint.key, "metrics" + suffix)]
            cells.append(f"{(on - off) / 1000:+,.1f}k ({(on - off) / off:+.1%})")
        print(f"| {endpoint.label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
