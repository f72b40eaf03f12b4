"""One benchmark run: start everything, set up, measure interleaved, stop everything."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.data import Region, write_random_file
from bench.limits import measure_limits
from bench.measure import Case, Observation, measure
from bench.procstat import RssSampler, thread_cpu_seconds
from bench.profile import recording, summarize, thread_report
from bench.references import References
from bench.report import Run
from bench.servers import PROJECT, Server, find_distribution3, start_registry
from bench.settings import Settings
from bench.workloads.blobs import LargeBlob
from bench.workloads.catalog import CatalogWalk
from bench.workloads.image import ManyLayerImage
from bench.workloads.pushers import ConcurrentPushers
from bench.workloads.repositories import NewRepositories
from bench.workloads.small import SmallRequests
from bench.workloads.tls import ThroughTLS
from registry.cpus import usable_cpus
from tests.support.tls import ServerCertificates, make_certificates

BASELINE = "Distribution 2.8"
PEER = "Distribution 3.1"


class Workload(Protocol):
    def setup(self, server: Server) -> None: ...
    def cases(self) -> list[Case]: ...


@dataclass
class Options:
    settings: Settings
    workers: int | None  # Dockyard's workers; None: its default (one per usable CPU)
    candidate: str  # "dockyard", or "distribution" for an A/A run of the harness itself
    only: list[str]  # workload names or case-key prefixes; empty means all
    limits: bool
    tmpdir: Path | None
    keep: bool
    profile: Path | None = None  # py-spy each case on Dockyard alone, results to this dir
    distribution3: Path | None = None  # Distribution 3.1's binary; None: unpacked from the anchors
    s3: bool = False  # every registry on S3 (Ceph RGW, blob GETs streamed), else on the filesystem


S3_WORKLOADS = ("blobs", "small", "image", "pushers")
"""What runs on S3 (the others reach into the filesystem layout, or are not about storage)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def selected(options: Options, name: str, key: str | None = None) -> bool:
    if not options.only:
        return True
    return any(name == o or (key is not None and key.startswith(o)) for o in options.only)


def build_workloads(
    options: Options, workdir: Path, big: Path, certificates: ServerCertificates, stack: ExitStack
) -> dict[str, Workload]:
    settings = options.settings
    wanted = {
        name
        for name, prefixes in {
            "blobs": ("push-", "pull-"),
            "small": ("head-blob", "manifest-", "base", "tags-list"),
            "image": ("image-",),
            "pushers": ("pushers",),
            "catalog": ("catalog",),
            "tls": ("tls-",),
            "repositories": ("new-repositories",),
        }.items()
        if not options.only
        or any(
            o == name or o.startswith(prefixes) or prefix.startswith(o)
            for o in options.only
            for prefix in prefixes
        )
    }
    workloads: dict[str, Workload] = {}
    if "blobs" in wanted:
        log("hashing the test file")
        workloads["blobs"] = LargeBlob(settings, big, Region.of(big, 0, settings.blob_size), options.s3)
    if "small" in wanted:
        workloads["small"] = SmallRequests(settings, workdir, tags_list=not options.s3)
    if "image" in wanted:
        workloads["image"] = ManyLayerImage(settings, redirects=options.s3)
    if "pushers" in wanted:
        workloads["pushers"] = ConcurrentPushers(settings, big)
    if "catalog" in wanted:
        workloads["catalog"] = CatalogWalk(settings)
    if "repositories" in wanted:
        workloads["repositories"] = NewRepositories(settings)
    if "tls" in wanted:
        workloads["tls"] = ThroughTLS(settings, workdir, big, certificates, stack, options.workers)
    return workloads


@contextmanager
def started_servers(options: Options, workdir: Path, distribution3: Path | None) -> Iterator[list[Server]]:
    servers: list[Server] = []
    with ExitStack() as stack:
        storage = s3_storage(options, workdir, stack)

        def start(kind: str, name: str, folder: str, workers: int | None, binary: Path | None = None) -> None:
            section = storage()
            server = start_registry(kind, name, workdir / folder, workers, binary=binary, storage=section)
            servers.append(server)
            if section is not None:
                # On S3 the same registry again on the same bucket, redirecting blob GETs.
                redirecting = {**section, "redirect": {"disable": False}}
                server.redirecting = start_registry(
                    kind,
                    redirected(name),
                    workdir / f"{folder}-redirects",
                    workers,
                    binary=binary,
                    storage=redirecting,
                )

        try:
            if options.candidate == "dockyard":
                log(f"starting Dockyard ({dockyard_workers(options)})")
                start("dockyard", "Dockyard", "dockyard", options.workers)
            else:
                log("starting a second Distribution in slot A (harness self-check)")
                start("distribution", "Distribution A", "dist-a", 1)
            if options.profile is None:
                log("starting Distribution 2.8")
                start("distribution", BASELINE, "distribution", 1)
                if distribution3 is not None:
                    log(f"starting Distribution 3.1 ({distribution3})")
                    start("distribution3", PEER, "distribution3", 1, binary=distribution3)
            yield servers
        finally:
            for server in servers:
                server.stop()


def redirected(name: str) -> str:
    """The name of a server's redirecting twin in the logs and the RSS accounting."""
    return f"{name} (redirects)"


def s3_storage(options: Options, workdir: Path, stack: ExitStack) -> Callable[[], dict[str, Any] | None]:
    """Each call: the ``storage`` section of the next registry, on its own bucket of one Ceph
    RADOS Gateway started now (stopped with ``stack``) when the run is on S3; else None."""
    if not options.s3:
        return lambda: None
    from tests.support.ceph import CephRGW  # noqa: PLC0415 - only S3 runs need Ceph

    log("starting a Ceph RADOS Gateway")
    rgw = CephRGW(workdir / "ceph").start()
    stack.callback(rgw.stop)

    def storage() -> dict[str, Any]:
        parameters = rgw.driver_parameters(rgw.create_bucket("bench"))
        return {"s3": parameters, "redirect": {"disable": True}}

    return storage


def dockyard_workers(options: Options) -> str:
    if options.workers is not None:
        return f"{options.workers} workers (--workers)"
    return f"its default: {usable_cpus()} workers, one per usable CPU"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def command_output(*command: str) -> str:
    try:
        finished = subprocess.run(
            command, check=False, capture_output=True, text=True, cwd=PROJECT, timeout=10
        )
    except OSError:
        return "?"
    return finished.stdout.strip()


EXT4_SYSFS = Path("/sys/fs/ext4")

WITHOUT_JOURNAL = (
    "without a journal: rows that create files are slower for up to six minutes after a large "
    "delete on it (bench/README.md)"
)


def temp_filesystem(workdir: Path) -> str:
    """The device and type of the filesystem the run writes on (``described_filesystem``)."""
    last_line = command_output("df", "--output=source,fstype", str(workdir)).splitlines()[-1]
    source, _, fstype = last_line.rpartition(" ")
    return described_filesystem(source.strip(), fstype) if source else last_line


def described_filesystem(source: str, fstype: str, ext4_sysfs: Path = EXT4_SYSFS) -> str:
    """``source`` and ``fstype``, and for ext4 whether it has no journal: then ext4 skips the
    inodes freed in the last minutes, reading each one's table block, whenever it allocates one,
    which doubled Dockyard's CPU for creating repositories soon after a large delete
    (``bench/SMALL.md``). ext4 names its journal's thread in sysfs: ``<none>`` without one."""
    described = f"{source} {fstype}"
    if fstype == "ext4":
        try:
            journal = (ext4_sysfs / Path(source).name / "journal_task").read_text().strip()
        except OSError:
            return described
        if journal == "<none>":
            described += f" {WITHOUT_JOURNAL}"
    return described


def describe_machine(options: Options, workdir: Path) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    settings = options.settings
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": command_output("git", "rev-parse", "--short", "HEAD"),
        "machine": f"{os.cpu_count()} cores ({cpu}), {int(memory) // 1024} MiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        "registries": (
            f"Dockyard with {dockyard_workers(options)}"
            if options.candidate == "dockyard"
            else "Distribution 2.8 in slot A too (harness self-check)"
        )
        + "; "
        + command_output("docker-registry", "--version"),
        "mode": ("quick" if settings.quick else "full")
        + f", {settings.repetitions} repetitions interleaved A,B,C / C,B,A",
        "temp dir filesystem": temp_filesystem(workdir),
        "load average at start": load_average(),
    }


def run(options: Options) -> Run:
    settings = options.settings
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=options.tmpdir))
    sampler = RssSampler()
    fronts = ExitStack()  # the TLS proxies the workloads start, stopped when the run ends
    try:
        meta = describe_machine(options, workdir)
        if WITHOUT_JOURNAL in meta["temp dir filesystem"]:
            log(f"the temp dir's filesystem is ext4 {WITHOUT_JOURNAL}")
        distribution3, missing = (None, "not measured when profiling")
        if options.profile is None:
            distribution3, missing = find_distribution3(options.distribution3)
        if distribution3 is None:
            log(f"skipping Distribution 3.1: {missing}")
            meta["registries"] += f"; Distribution 3.1 skipped: {missing}"
        else:
            meta["registries"] += "; " + command_output(str(distribution3), "--version")
        started = time.monotonic()
        big = workdir / "data" / "big.bin"
        big.parent.mkdir()
        log(f"writing {settings.blob_size >> 20} MiB of random test data")
        write_random_file(big, settings.blob_size)
        certificates = make_certificates(workdir / "certificates")
        workloads = build_workloads(options, workdir, big, certificates, fronts)
        limits = None
        if options.limits:
            log("measuring machine limits (sha256, disk fsync, nginx sendfile, nginx TLS, Python server)")
            limits = measure_limits(workdir, big, settings.limit_size, certificates, settings.wrk_seconds)
        with started_servers(options, workdir, distribution3) as servers:
            for server in servers:
                sampler.watch(server.name, server.pid)
                if server.redirecting is not None:
                    sampler.watch(server.redirecting.name, server.redirecting.pid)
            sampler.start()
            for name, workload in workloads.items():
                for server in servers:
                    log(f"setting up {name} on {server.name}")
                    workload.setup(server)
            cases = [
                case
                for name, workload in workloads.items()
                for case in workload.cases()
                if selected(options, name, case.key)
            ]
            if options.profile is not None:
                profile_all(servers[0], sampler, cases, options.profile)
                raise SystemExit(0)
            references = References(workdir, big, certificates, sampler, fronts)
            observations, reference_observations = measure_all(settings, servers, sampler, cases, references)
            server_names = [server.name for server in servers]
            process_peaks = {name: sampler.process_peaks(name) for name in server_names}
        meta["load average at end"] = load_average()
        meta["duration"] = f"{(time.monotonic() - started) / 60:.1f} min"
        return Run(
            settings,
            server_names[0],
            server_names[1:],
            cases,
            observations,
            limits,
            meta,
            process_peaks,
            reference_observations,
        )
    finally:
        fronts.close()
        sampler.stop()
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def measure_all(
    settings: Settings, servers: list[Server], sampler: RssSampler, cases: list[Case], references: References
) -> tuple[dict[str, dict[str, list[Observation]]], dict[str, list[Observation]]]:
    """Every case on every server, per repetition; and per pull row, its nginx reference in
    each repetition (``bench.references``)."""
    observations: dict[str, dict[str, list[Observation]]] = {
        case.key: {server.name: [] for server in servers} for case in cases
    }
    reference_observations: dict[str, list[Observation]] = {
        case.key: [] for case in cases if case.reference is not None
    }
    for repetition in range(settings.repetitions):
        for index, case in enumerate(cases):
            # A,B,C then C,B,A: whatever the machine does meanwhile hits all alike. A pull row's
            # reference goes first, then last: ref,A,B,C / C,B,A,ref.
            order: list[tuple[Server, Case]] = [(server, case) for server in servers]
            if case.reference is not None:
                order.insert(0, (references.server(case.reference), references.case(case.reference)))
            if (repetition + index) % 2 == 1:
                order.reverse()
            for server, measured in order:
                observation = measure(server, sampler, measured)
                if measured is case:
                    observations[case.key][server.name].append(observation)
                else:
                    reference_observations[case.key].append(observation)
                log(
                    f"rep {repetition + 1}/{settings.repetitions} {case.key:<22} "
                    f"{server.name:<17} {observation.value:>10.2f} {case.unit:<5} "
                    f"server CPU {observation.server_cpu:6.2f}s "
                    f"client CPU {observation.client_cpu:5.2f}s "
                    f"RSS {observation.peak_rss >> 20} MiB"
                )
    return observations, reference_observations


def profile_all(server: Server, sampler: RssSampler, cases: list[Case], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    summary = [f"# py-spy profile of {server.name}, one run of each case\n"]
    for case in cases:
        collapsed = directory / f"{case.key}.txt"
        tree = sampler.tree(server.name)
        with recording(server.pid, collapsed):
            before = thread_cpu_seconds(tree)
            observation = measure(server, sampler, case)
            threads = thread_report(before, thread_cpu_seconds(tree), observation.wall)
        text = threads + "\n" + summarize(collapsed)
        result = f"{observation.value:.2f} {case.unit}, server CPU {observation.server_cpu:.2f} s"
        log(f"profiled {case.key}: {result} (slowed by sampling)")
        summary.append(f"## {case.label}\n\n{result} (slowed by sampling)\n\n```\n{text}```\n")
    (directory / "SUMMARY.md").write_text("\n".join(summary))
    print("\n".join(summary))
    log(f"profiles in {directory}")
