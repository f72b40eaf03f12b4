"""Pulls on S3 from this checkout against another, interleaved, with Distribution 3.1 beside them:
server CPU of a full blob GET streamed through the registry, of small blob GETs streamed through
it (and their latency), and of blob GETs answered with a redirect to a presigned URL.

```sh
git archive COMMIT | tar -x -C /tmp/before                  # the code to compare with
.venv/bin/python -m bench.s3_pull_ab --baseline /tmp/before -n 6
.venv/bin/python -m bench.s3_pull_ab --size 64 --blobs 50 --no-distribution3 -n 3
```

One throwaway Ceph RADOS Gateway (tests.support.ceph) and one bucket, holding a ``--size`` MiB
blob and ``--blobs`` small ones pushed once. Each registry runs twice on that bucket: with
``storage.redirect.disable`` (the full GET, every byte counted, then each small blob's GET,
timed) and with redirects (each small blob's GET must answer 307; the client does not follow
it). One worker each (``--workers``) and no descriptor cache unless ``--cache`` (Distribution's
``inmemory`` and Dockyard's, whose entries expire after 5 s), so that every GET reads the
repository's link and the blob's size (a HEAD, or the content's own answer) from the gateway.
Every round runs both cases on every registry, the order reversed every other round; CPU is
the servers' processes' user and system time from ``/proc`` (10 ms ticks; the sum over threads
would lose the worker threads that end between two samples). Prints the median (min to max)
per case and registry.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procstat import cpu_seconds, process_tree
from bench.servers import PROJECT, Server, _spawn, find_distribution3, registry_config
from bench.summary import spread
from tests.support.ceph import CephRGW
from tests.support.processes import free_port

MiB = 1 << 20
REPOSITORY = "bench/s3-pull"
SMALL = 1000
"""Bytes of each small blob."""


def start(name: str, workdir: Path, storage: dict[str, Any], command: list[str], cache: bool) -> Server:
    """A registry serving ``storage``, started by ``command`` + [config path]."""
    workdir.mkdir(parents=True)
    port = free_port()
    config = registry_config(workdir, port, storage)
    if not cache:
        del config["storage"]["cache"]
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    return Server(name, port, workdir, _spawn([*command, str(config_path)], workdir, cwd=workdir)).ready()


def dockyard(source: Path, workers: int) -> list[str]:
    """``dockyard serve`` of the code in ``source``, its packages before the virtualenv's."""
    serve = [sys.executable, "-m", "registry", "serve", "--workers", str(workers)]
    return ["env", f"PYTHONPATH={source.resolve()}", *serve]


def push(http: httpx.Client, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = http.post(f"/v2/{REPOSITORY}/blobs/uploads/")
    done = http.put(started.headers["Location"], params={"digest": digest}, content=data)
    if done.status_code != 201:
        raise RuntimeError(f"push failed: {done.status_code} {done.text}")
    return digest


def server_cpu(server: Server) -> float:
    """CPU seconds of the server's processes, threads that have ended included (10 ms ticks)."""
    return cpu_seconds(process_tree(server.pid))


def full_get(server: Server, digest: str, size: int) -> float:
    """Server CPU seconds of one streamed GET of the blob."""
    with httpx.Client(base_url=f"http://{server.host}:{server.port}", timeout=600) as http:
        before = server_cpu(server)
        received = 0
        with http.stream("GET", f"/v2/{REPOSITORY}/blobs/{digest}") as response:
            if response.status_code != 200:
                raise RuntimeError(f"{server.name}: GET answered {response.status_code}")
            for chunk in response.iter_raw(MiB):
                received += len(chunk)
        used = server_cpu(server) - before
    if received != size:
        raise RuntimeError(f"{server.name}: {received} bytes of {size}")
    return used


def streamed_gets(server: Server, digests: list[str]) -> tuple[float, float]:
    """Server CPU milliseconds per small blob GET streamed through the registry, and the median
    milliseconds from request to last byte."""
    with httpx.Client(base_url=f"http://{server.host}:{server.port}", timeout=60) as http:
        took = []
        before = server_cpu(server)
        for digest in digests:
            started = time.perf_counter()
            response = http.get(f"/v2/{REPOSITORY}/blobs/{digest}")
            took.append(time.perf_counter() - started)
            if response.status_code != 200 or len(response.content) != SMALL:
                raise RuntimeError(f"{server.name}: streamed GET answered {response.status_code}")
        used = server_cpu(server) - before
    return used * 1000 / len(digests), statistics.median(took) * 1000


def redirected_gets(server: Server, digests: list[str]) -> float:
    """Server CPU milliseconds per GET answered with a redirect."""
    with httpx.Client(base_url=f"http://{server.host}:{server.port}", timeout=60) as http:
        before = server_cpu(server)
        for digest in digests:
            response = http.get(f"/v2/{REPOSITORY}/blobs/{digest}")
            if response.status_code != 307:
                raise RuntimeError(f"{server.name}: redirect answered {response.status_code}")
        used = server_cpu(server) - before
    return used * 1000 / len(digests)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.s3_pull_ab", description=__doc__.partition("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--size", type=int, default=256, help="MiB of the large blob")
    parser.add_argument("--blobs", type=int, default=200, help="small blobs fetched through redirects")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured beside this one")
    parser.add_argument("--distribution3", type=Path, help="Distribution 3.1's registry binary")
    parser.add_argument("--no-distribution3", action="store_true")
    parser.add_argument("--cache", action="store_true", help="cache.blobdescriptor: inmemory for all")
    args = parser.parse_args(argv)
    commands = {"after": dockyard(PROJECT, args.workers)}
    if args.baseline:
        commands["before"] = dockyard(args.baseline, args.workers)
    if not args.no_distribution3:
        binary, missing = find_distribution3(args.distribution3)
        if binary is None:
            raise SystemExit(f"Distribution 3.1: {missing} (or --no-distribution3)")
        commands["distribution3"] = [str(binary), "serve"]
    with tempfile.TemporaryDirectory(prefix="dockyard-s3-pull-ab-") as temp:
        workdir = Path(temp)
        rgw = CephRGW(workdir / "ceph").start()
        servers: dict[tuple[str, bool], Server] = {}
        try:
            s3 = rgw.driver_parameters(rgw.create_bucket())
            for name, command in commands.items():
                for redirect in (False, True):
                    storage = {"s3": s3, "redirect": {"disable": not redirect}}
                    place = workdir / f"{name}-{'redirect' if redirect else 'stream'}"
                    servers[(name, redirect)] = start(name, place, storage, command, args.cache)
            pusher = servers[("after", False)]
            with httpx.Client(base_url=f"http://{pusher.host}:{pusher.port}", timeout=600) as http:
                large = push(http, os.urandom(args.size * MiB))
                small = [push(http, os.urandom(SMALL)) for _ in range(args.blobs)]
            results: dict[tuple[str, str], list[float]] = {}
            names = list(commands)
            for number in range(args.rounds):
                for name in names if number % 2 == 0 else names[::-1]:
                    full = full_get(servers[(name, False)], large, args.size * MiB)
                    results.setdefault(("full", name), []).append(full)
                    cpu, latency = streamed_gets(servers[(name, False)], small)
                    results.setdefault(("streamed", name), []).append(cpu)
                    results.setdefault(("latency", name), []).append(latency)
                    redirected = redirected_gets(servers[(name, True)], small)
                    results.setdefault(("redirect", name), []).append(redirected)
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for server in servers.values():
                server.stop()
            rgw.stop()
    print("| case | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    full_cells = [spread(results[("full", name)], 3) for name in names]
    print(f"| full GET of {args.size} MiB, server CPU s | " + " | ".join(full_cells) + " |")
    streamed_cells = [spread(results[("streamed", name)], 2) for name in names]
    print(
        f"| GET of a {SMALL}-byte blob streamed, server CPU ms a GET | " + " | ".join(streamed_cells) + " |"
    )
    latency_cells = [spread(results[("latency", name)], 2) for name in names]
    print(f"| GET of a {SMALL}-byte blob streamed, ms a GET (median) | " + " | ".join(latency_cells) + " |")
    redirect_cells = [spread(results[("redirect", name)], 2) for name in names]
    print("| GET answered 307, server CPU ms a GET | " + " | ".join(redirect_cells) + " |")


if __name__ == "__main__":
    main()
