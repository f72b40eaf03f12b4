"""How long a worker's other requests wait while it sends a large blob: GET ``/v2/`` answered by
the same worker during a 1 GiB pull, with the blob in the page cache and out of it, from this
checkout and optionally another, interleaved.

```sh
git archive COMMIT | tar -x -C /tmp/before                   # the code to compare with
.venv/bin/python -m bench.loop_stall --baseline /tmp/before -n 5
```

Each Dockyard runs one worker on its own store holding the same blob. Per round and source, for
``cached`` and then ``cold`` (the blob's file dropped from the page cache with
``POSIX_FADV_DONTNEED`` first), curl pulls the blob while this process sends GET ``/v2/`` on
one keep-alive connection, one at a time with a 2 ms pause between them, and records how long
each answer took. It prints per source and case the median (min to max over rounds) of the
pull's seconds, of the answers' median, 99th percentile and longest wait in milliseconds, and
of the registry's CPU seconds per pull split into its event loop and its other threads.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.data import write_random_file
from bench.http import FileBody
from bench.observe import start
from bench.push_ab import loop_and_threads, split_cpu
from bench.servers import PROJECT, Server
from bench.summary import spread

CASES = ("cached", "cold")
PAUSE = 0.002
"""Seconds between two small requests: often enough to catch stalls of a few milliseconds."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.loop_stall", description=__doc__.partition("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, help="MiB of the blob")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured beside this one")
    parser.add_argument("--tmpdir", type=Path, help="where the stores and the test file go")
    args = parser.parse_args(argv)
    sources = [("after", PROJECT)] + ([("before", args.baseline)] if args.baseline else [])
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="dockyard-loop-stall-", dir=args.tmpdir) as temp:
        workdir = Path(temp)
        path = workdir / "blob.bin"
        write_random_file(path, args.size << 20)
        digest = "sha256:" + file_sha256(path)
        servers: list[Server] = []
        try:
            for name, source in sources:
                server = start("quiet", workdir / name, workdir / name / "storage", 1, source)
                servers.append(server)
                push(server, path, digest)
            path.unlink()
            for number in range(args.rounds):
                for server in servers if number % 2 == 0 else servers[::-1]:
                    for case in CASES:
                        row = results.setdefault((server.name, case), {})
                        for measure, value in pull(server, digest, case == "cold").items():
                            row.setdefault(measure, []).append(value)
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    print("| source | case | " + " | ".join(results[(sources[0][0], CASES[0])]) + " |")
    print("| --- | --- |" + " --- |" * len(results[(sources[0][0], CASES[0])]))
    for (name, case), row in results.items():
        cells = [spread(values, 0 if measure == "answers" else 2) for measure, values in row.items()]
        print(f"| {name} | {case} | " + " | ".join(cells) + " |")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(16 << 20):
            digest.update(piece)
    return digest.hexdigest()


def push(server: Server, path: Path, digest: str) -> None:
    with server.connect() as connection, path.open("rb") as file:
        body = FileBody(file, 0, path.stat().st_size)
        connection.request("POST", f"/v2/bench/blob/blobs/uploads/?digest={digest}", body=body).expect(201)


def pull(server: Server, digest: str, cold: bool) -> dict[str, float]:
    if cold:
        fd = os.open(server.blob_data_dir(digest) / "data", os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    url = f"http://{server.host}:{server.port}/v2/bench/blob/blobs/{digest}"
    waits: list[float] = []
    done = threading.Event()
    with server.connect() as connection:
        connection.request("GET", "/v2/").expect(200)  # connected before the pull starts
        cpu_before = split_cpu(server)
        started = time.perf_counter()
        command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url]
        curl = subprocess.Popen(command, stdout=subprocess.PIPE)

        def wait_for_curl() -> None:
            curl.wait()
            done.set()

        threading.Thread(target=wait_for_curl, daemon=True).start()
        while not done.is_set():
            sent = time.perf_counter()
            connection.request("GET", "/v2/").expect(200)
            waits.append(time.perf_counter() - sent)
            time.sleep(PAUSE)
        seconds = time.perf_counter() - started
    assert curl.stdout is not None
    if curl.stdout.read() != b"200":
        raise RuntimeError("the pull did not answer 200")
    loop, threads = loop_and_threads(cpu_before, split_cpu(server))
    waits.sort()
    return {
        "pull s": seconds,
        "answers": len(waits),
        "median ms": statistics.median(waits) * 1000,
        "p99 ms": waits[int(len(waits) * 0.99)] * 1000,
        "max ms": waits[-1] * 1000,
        "loop CPU s": loop,
        "threads CPU s": threads,
    }


if __name__ == "__main__":
    main()
