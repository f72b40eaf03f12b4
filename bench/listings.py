"""``python -m bench.listings``: catalog and tags pages at 1,000 and 100,000 entries.

Dockyard, Distribution 3.1 and (where it is cheap) Debian's Distribution 2.8 serve one store,
written directly in the layout (pushing 100,000 repositories would take hours): ``scale/r-N``
repositories with their ``_manifests`` and ``_layers`` directories, and one repository
``scale/tagged`` whose tags directory holds a directory per tag (the lists read names only).
Each repetition times pages of ``n=100`` following ``Link`` from five points of the list (its
start, a quarter, half, three quarters, near the end), on every registry, interleaved A,B,C /
C,B,A; every page is checked against the names written. A page time independent of the size
is what the rows show. With ``--s3`` the store is a bucket on a throwaway Ceph RADOS Gateway
instead (a tag link per repository and per tag; no Distribution 2.8)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import target_of
from bench.http import HTTPError
from bench.procstat import cpu_seconds, process_tree
from bench.servers import PROJECT, Server, start_registry
from bench.summary import spread
from tests.support.ceph import CephRGW

PAGE = 100
STARTS = (0.0, 0.25, 0.5, 0.75, 0.99)
"""Where in the list each run of pages starts."""
PAGES_PER_START = 10
DISTRIBUTION_28_UP_TO = 10_000
"""Distribution 2.8 walks every repository before ``last`` for each catalog page: above this
many, one repetition takes hours."""
LAYOUT = "docker/registry/v2/repositories"
LINK = b"sha256:" + b"0" * 64
S3_WRITERS = 32
TAGGED = "scale/tagged"
NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
ANCHORS = PROJECT.parent.parent / "shared" / "anchors" / "unpack-distribution.sh"


def names_of(count: int) -> tuple[list[str], list[str]]:
    """``count`` repository names and tags, in the order a registry serves them."""
    return [f"scale/r-{index:06d}" for index in range(count)], [f"t-{index:06d}" for index in range(count)]


def build_store(root: Path, count: int) -> tuple[list[str], list[str]]:
    """``count`` repositories and ``count`` tags; returns both lists in the order they are served."""
    repositories = root / LAYOUT
    names, tags = names_of(count)
    for name in names:
        (repositories / name / "_manifests").mkdir(parents=True)
        (repositories / name / "_layers").mkdir()  # what Distribution 2.8 recognizes a repository by
    tags_dir = repositories / TAGGED / "_manifests" / "tags"
    tags_dir.mkdir(parents=True)
    (repositories / TAGGED / "_layers").mkdir()
    for tag in tags:
        (tags_dir / tag).mkdir()
    settled = time.time() - 60  # as a store that has not changed for a minute
    for directory in (repositories, repositories / "scale", tags_dir):
        os.utime(directory, (settled, settled))
    return sorted([*names, TAGGED]), tags


def build_bucket(client: Any, bucket: str, count: int) -> tuple[list[str], list[str]]:
    """As ``build_store``, on S3: a tag link per repository and per tag of ``scale/tagged``."""
    names, tags = names_of(count)
    keys = [f"{LAYOUT}/{name}/_manifests/tags/latest/current/link" for name in names]
    keys += [f"{LAYOUT}/{TAGGED}/_manifests/tags/{tag}/current/link" for tag in tags]
    with ThreadPoolExecutor(S3_WRITERS) as pool:
        for _ in pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=LINK), keys):
            pass
    return sorted([*names, TAGGED]), tags


@dataclass
class Row:
    """Per-repetition medians (and maxima) of page times in ms, by registry."""

    medians: dict[str, list[float]] = field(default_factory=dict)
    maxima: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """Server CPU (all its processes, from /proc: 10 ms ticks) per page."""


def page_times(server: Server, url: str, key: str, expected: list[str]) -> list[float]:
    """Seconds per page, following ``Link`` from each of ``STARTS``; every page is checked."""
    times: list[float] = []
    with server.connect() as connection:
        for fraction in STARTS:
            index = int(fraction * len(expected))
            last = expected[index - 1] if index else None
            target: str | None = f"{url}?n={PAGE}" + (f"&last={last}" if last else "")
            for _ in range(PAGES_PER_START):
                if target is None:
                    break
                started = time.perf_counter()
                response = connection.request("GET", target).expect(200)
                times.append(time.perf_counter() - started)
                page = json.loads(response.body)[key] or []  # Distribution: null after a last full page
                if page != expected[index : index + PAGE]:
                    raise HTTPError(
                        f"{server.name}: wrong page of {url} after {expected[index - 1] if index else None}"
                    )
                index += len(page)
                link = NEXT_LINK.search(response.header("Link"))
                target = target_of(link.group(1)) if link else None
    return times


@contextmanager
def serving(
    storage: dict[str, Any], workdir: Path, count: int, workers: int, distribution3: Path
) -> Iterator[list[Server]]:
    servers: list[Server] = []
    try:
        servers.append(start_registry("dockyard", "Dockyard", workdir / "dockyard", workers, storage=storage))
        dist3 = workdir / "dist3"
        third = start_registry("distribution3", "Distribution 3.1", dist3, 1, None, distribution3, storage)
        servers.append(third)
        if "filesystem" in storage and count <= DISTRIBUTION_28_UP_TO and shutil.which("docker-registry"):
            dist2 = workdir / "dist2"
            servers.append(start_registry("distribution", "Distribution 2.8", dist2, 1, storage=storage))
        yield servers
    finally:
        for server in servers:
            server.stop()


def measure(
    count: int, repetitions: int, workers: int, workdir: Path, distribution3: Path, rgw: CephRGW | None
) -> dict[str, Row]:
    started = time.perf_counter()
    if rgw is None:
        root = workdir / f"store-{count}"
        repositories, tags = build_store(root, count)
        storage: dict[str, Any] = {"filesystem": {"rootdirectory": str(root)}}
    else:
        bucket = rgw.create_bucket()
        repositories, tags = build_bucket(rgw.client(), bucket, count)
        storage = {"s3": rgw.driver_parameters(bucket)}
    log(f"{count} repositories and tags written in {time.perf_counter() - started:.1f} s")
    rows = {"catalog": Row(), "tags": Row()}
    lists = {
        "catalog": ("/v2/_catalog", "repositories", repositories),
        "tags": (f"/v2/{TAGGED}/tags/list", "tags", tags),
    }
    with serving(storage, workdir / f"servers-{count}", count, workers, distribution3) as servers:
        for repetition in range(repetitions):
            for server in servers if repetition % 2 == 0 else servers[::-1]:
                for kind, (url, key, expected) in lists.items():
                    if kind == "tags" and server.name == "Distribution 2.8":
                        continue  # it ignores n and last: every request lists every tag
                    tree = process_tree(server.pid)
                    cpu_before = cpu_seconds(tree)
                    times = page_times(server, url, key, expected)
                    cpu = (cpu_seconds(tree) - cpu_before) / len(times)
                    rows[kind].cpu.setdefault(server.name, []).append(cpu * 1000)
                    rows[kind].medians.setdefault(server.name, []).append(statistics.median(times) * 1000)
                    rows[kind].maxima.setdefault(server.name, []).append(max(times) * 1000)
            log(f"{count}: repetition {repetition + 1} of {repetitions} done")
    return rows


def render(results: dict[int, dict[str, Row]], repetitions: int) -> str:
    names = ["Dockyard", "Distribution 3.1", "Distribution 2.8"]
    lines = [
        f"ms per page of `n={PAGE}`: median over repetitions of each repetition's median page "
        f"({repetitions} repetitions, {len(STARTS) * PAGES_PER_START} pages each; min to max in brackets). "
        "Max page: the slowest page of any repetition.",
        "",
        "| List | Entries | " + " | ".join(names) + " | Dockyard's lead over 3.1 | Dockyard max page |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |",
    ]
    for count, rows in sorted(results.items()):
        for kind, row in rows.items():
            cells = [spread(row.medians[name], 2) if name in row.medians else "not run" for name in names]
            lead = statistics.median(row.medians["Distribution 3.1"]) / statistics.median(
                row.medians["Dockyard"]
            )
            worst = max(row.maxima["Dockyard"])
            lines.append(f"| {kind} | {count:,} | " + " | ".join(cells) + f" | {lead:.1f}x | {worst:.1f} |")
    lines += [
        "",
        "Server CPU ms per page (all the server's processes; median and min to max over repetitions):",
        "",
        "| List | Entries | " + " | ".join(names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for count, rows in sorted(results.items()):
        for kind, row in rows.items():
            cells = [spread(row.cpu[name], 2) if name in row.cpu else "not run" for name in names]
            lines.append(f"| {kind} | {count:,} | " + " | ".join(cells) + " |")
    counts = sorted(results)
    if len(counts) > 1:
        small, large = counts[0], counts[-1]
        lines += ["", f"Page time at {large:,} entries over page time at {small:,} (1.0 = no cliff):", ""]
        for kind in ("catalog", "tags"):
            ratios = []
            for name in names[:2]:
                growth = statistics.median(results[large][kind].medians[name]) / statistics.median(
                    results[small][kind].medians[name]
                )
                cpu_growth = statistics.median(results[large][kind].cpu[name]) / statistics.median(
                    results[small][kind].cpu[name]
                )
                ratios.append(f"{name} {growth:.2f}x (server CPU {cpu_growth:.2f}x)")
            lines.append(f"- {kind}: " + ", ".join(ratios))
    return "\n".join(lines) + "\n"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unpack_distribution3(workdir: Path) -> Path:
    output = subprocess.run(
        [str(ANCHORS), str(workdir / "anchors")], check=True, capture_output=True, text=True
    )
    return Path(output.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.listings", description=__doc__)
    parser.add_argument("--sizes", default="1000,100000", help="entries in each list, comma-separated")
    parser.add_argument("-n", "--repetitions", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="Dockyard worker processes")
    parser.add_argument(
        "--distribution3", type=Path, help=f"Distribution 3.1's binary (default: unpacked by {ANCHORS})"
    )
    parser.add_argument("--tmpdir", type=Path, help="where the stores go (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the stores and server logs")
    parser.add_argument("--output", type=Path, help="also write the table to this markdown file")
    parser.add_argument(
        "--s3", action="store_true", help="store on a throwaway Ceph RADOS Gateway (tests.support.ceph)"
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-listings-", dir=args.tmpdir))
    rgw = CephRGW(workdir / "ceph").start() if args.s3 else None
    try:
        distribution3 = args.distribution3 or unpack_distribution3(workdir)
        sizes = [int(size) for size in args.sizes.split(",")]
        load_before = os.getloadavg()[0]
        results = {
            size: measure(size, args.repetitions, args.workers, workdir, distribution3, rgw) for size in sizes
        }
        load_after = os.getloadavg()[0]
        where = "on Ceph RGW" if rgw else f"in {workdir.parent}"
        machine = f"Store {where}; load average {load_before:.1f} before, {load_after:.1f} after."
        text = machine + "\n\n" + render(results, args.repetitions)
        print(text)
        if args.output is not None:
            args.output.write_text(text)
    finally:
        if rgw is not None:
            rgw.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            log(f"removing {workdir}")
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
