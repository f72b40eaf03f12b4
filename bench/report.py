"""Turning observations into the tables: medians, ranges, speedups, targets."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.limits import BASE_CONCURRENCIES, Limits
from bench.measure import Case, Observation
from bench.settings import Settings

MiB = 1 << 20
RSS_LIMIT_MIB = 150
PULL_SHARE_OF_NGINX = 0.8
"""The share of nginx serving the file itself (the row's reference) each pull row must reach."""
BASE_ROWS = {f"base-c{concurrency}": concurrency for concurrency in BASE_CONCURRENCIES}
"""The GET /v2/ rows, shown beside the rate of a bare Python server (informative, no target)."""


@dataclass
class Run:
    """Everything one benchmark run measured, in the order it ran."""

    settings: Settings
    candidate: str  # label of slot A
    baselines: list[str]  # labels of the other slots: Distribution 2.8, then 3.1 when it ran
    cases: list[Case]
    observations: dict[str, dict[str, list[Observation]]]  # case key -> server -> per repetition
    limits: Limits | None
    meta: dict[str, str] = field(default_factory=dict)
    process_peaks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    references: dict[str, list[Observation]] = field(default_factory=dict)
    """Per pull row: its nginx reference, measured in each repetition (``bench.references``)."""

    def values(self, key: str, server: str) -> list[float]:
        return [o.value for o in self.observations[key][server]]

    def shares(self, key: str, server: str) -> list[float]:
        """Per repetition: the row's value on ``server`` over its reference's in that repetition."""
        references = [o.value for o in self.references[key]]
        values = self.values(key, server)
        return [value / reference for value, reference in zip(values, references, strict=True)]

    def rep_peaks(self, server: str) -> list[float]:
        """Peak RSS (MiB) of each repetition: the largest peak over its cases."""
        peaks: dict[int, float] = {}
        for per_server in self.observations.values():
            for rep, observation in enumerate(per_server[server]):
                peaks[rep] = max(peaks.get(rep, 0.0), observation.peak_rss / MiB)
        return [peaks[rep] for rep in sorted(peaks)]


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def spread(values: list[float]) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))} to {fmt(max(values))})"


def speedup(case: Case, candidate: list[float], baseline: list[float]) -> float:
    a, b = statistics.median(candidate), statistics.median(baseline)
    return a / b if case.higher_is_better else b / a


def targets(case: Case, baselines: list[str]) -> list[float | None]:
    """The speedup each baseline column must beat: the issue's over 2.8, then ahead of 3.1."""
    return [case.target if index == 0 else case.peer_target for index in range(len(baselines))]


def verdict(run: Run, case: Case, ratios: list[float]) -> tuple[str, str]:
    """(target text, met?) for a case; met means strictly better than every target."""
    wanted = targets(case, run.baselines)
    texts = [f"> {target}x" if target is not None else "-" for target in wanted]
    if all(target is None for target in wanted):
        return "", ""
    met = all(target is None or ratio > target for ratio, target in zip(ratios, wanted, strict=True))
    text = " / ".join(texts)
    if case.key in run.references:
        share = statistics.median(run.shares(case.key, run.candidate))
        text += f", >= 80% nginx ({share:.0%})"
        met = met and share >= PULL_SHARE_OF_NGINX
    base = BASE_ROWS.get(case.key)
    if base is not None and run.limits is not None and base in run.limits.python_base_rps:
        text += f" (Python limit {fmt(run.limits.python_base_rps[base])})"
    return text, "yes" if met else "**no**"


def short(server: str) -> str:
    """A column heading's name for a baseline: its version."""
    return server.removeprefix("Distribution ")


def table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(run: Run) -> str:
    a, baselines = run.candidate, run.baselines
    rows = []
    for case in run.cases:
        if case.key not in run.observations:
            continue
        va = run.values(case.key, a)
        others = [run.values(case.key, b) for b in baselines]
        ratios = [speedup(case, va, vb) for vb in others]
        target, met = verdict(run, case, ratios)
        label = case.label + (f" ({case.note})" if case.note else "")
        rows.append(
            [
                label,
                case.unit,
                spread(va),
                *map(spread, others),
                *(f"{ratio:.2f}x" for ratio in ratios),
                target,
                met,
            ]
        )
    peaks_a = run.rep_peaks(a)
    if peaks_a:
        met = "yes" if max(peaks_a) < RSS_LIMIT_MIB else "**no**"
        peaks = [run.rep_peaks(b) for b in baselines]
        rows.append(
            [
                "server peak RSS, all processes (per repetition)",
                "MiB",
                spread(peaks_a),
                *map(spread, peaks),
                *(f"{statistics.median(p) / statistics.median(peaks_a):.2f}x" for p in peaks),
                f"< {RSS_LIMIT_MIB} MiB",
                met,
            ]
        )
    headers = [
        "Workload",
        "Unit",
        f"{a} median (min-max)",
        *(f"{b} median (min-max)" for b in baselines),
        *(f"vs {short(b)}" for b in baselines),
        "Target (" + " / ".join(f"vs {short(b)}" for b in baselines) + ")",
        "Met",
    ]
    return table(headers, rows, "ll" + "r" * (1 + 2 * len(baselines)) + "ll")


def per_server(run: Run, key: str) -> list[list[Observation]]:
    """The observations of ``key`` for the candidate, then each baseline."""
    return [run.observations[key][server] for server in (run.candidate, *run.baselines)]


def slots(run: Run) -> str:
    return " / ".join([run.candidate, *map(short, run.baselines)])


def joined(servers: list[list[Observation]], value: Callable[[Observation], float]) -> str:
    """The median of ``value`` over each server's observations, ``a / b / c``."""
    return " / ".join(fmt(statistics.median(value(o) for o in observations)) for observations in servers)


def latency(servers: list[list[Observation]], name: str, or_mean: bool = False) -> str:
    """A latency column: the load generator's percentile, or (``or_mean``) its mean where it
    reports no percentiles (h2load)."""
    if all(name in o.extra for observations in servers for o in observations):
        return joined(servers, lambda o: o.extra[name])
    if or_mean and all("mean_ms" in o.extra for observations in servers for o in observations):
        return "mean " + joined(servers, lambda o: o.extra["mean_ms"])
    return "-"


def small_request_table(run: Run) -> str:
    rows = []
    for case in run.cases:
        if case.unit != "req/s" or case.key not in run.observations:
            continue
        servers = per_server(run, case.key)
        rows.append(
            [
                case.label,
                latency(servers, "p50_ms", or_mean=True),
                latency(servers, "p99_ms"),
                joined(servers, lambda o: o.server_cpu / o.extra["requests"] * 1e6),
                joined(servers, lambda o: o.client_cpu / o.extra["requests"] * 1e6),
            ]
        )
    headers = [
        "Request",
        f"p50 ms ({slots(run)})",
        "p99 ms",
        "server CPU µs/request",
        "client CPU µs/request (wrk; HEAD: bench.loadgen)",
    ]
    return table(headers, rows)


def resources_table(run: Run) -> str:
    rows = []
    for case in run.cases:
        if case.key not in run.observations:
            continue
        servers = per_server(run, case.key)
        other = " / ".join(fmt(max(o.other_cpu / o.wall for o in observations)) for observations in servers)
        rows.append(
            [
                case.label,
                joined(servers, lambda o: o.server_cpu),
                joined(servers, lambda o: o.client_cpu),
                joined(servers, lambda o: o.peak_rss / MiB),
                other,
            ]
        )
    headers = [
        f"Workload ({slots(run)})",
        "server CPU s",
        "client CPU s",
        "server peak RSS MiB",
        "other load, cores (max)",
    ]
    return table(headers, rows)


def processes_table(run: Run) -> str:
    rows = [
        [server, description, fmt(peak / MiB)]
        for server, peaks in run.process_peaks.items()
        for description, peak in peaks
    ]
    return table(["Server", "Process", "peak RSS MiB"], rows, "llr")


def shares_table(run: Run) -> str:
    """Each pull row against nginx serving the file itself in the same repetitions."""
    rows = []
    for case in run.cases:
        if case.key not in run.references:
            continue
        reference = run.references[case.key]
        rows.append(
            [
                case.label,
                case.reference or "",
                spread([o.value for o in reference]),
                fmt(statistics.median(o.server_cpu for o in reference)),
                *(share_spread(run.shares(case.key, server)) for server in (run.candidate, *run.baselines)),
            ]
        )
    headers = [
        "Pull",
        "Reference",
        "reference MB/s",
        "reference CPU s",
        *(f"{short(server)}: share median (min to max)" for server in (run.candidate, *run.baselines)),
    ]
    return table(headers, rows, "ll" + "r" * (len(headers) - 2))


def share_spread(shares: list[float]) -> str:
    return f"{statistics.median(shares):.0%} ({min(shares):.0%} to {max(shares):.0%})"


def limits_table(limits: Limits) -> str:
    rows = [
        ["sha256 on one core (hashlib, 16 MiB buffers)", fmt(limits.sha256_mbps)],
        ["disk write + fsync, buffered 16 MiB writes (benchmark temp dir)", fmt(limits.disk_fsync_mbps)],
        ["disk write + fsync, 4 MiB O_DIRECT writes (as Dockyard uploads)", fmt(limits.disk_direct_mbps)],
        ["loopback HTTP, nginx sendfile, verifying client (as the pulls)", fmt(limits.nginx_mbps)],
        ["loopback HTTP, nginx sendfile, client discards", fmt(limits.nginx_discard_mbps)],
        ["loopback HTTPS, nginx with the shipped TLS settings, verifying client", fmt(limits.nginx_tls_mbps)],
    ]
    rows = [[label, value, "MB/s"] for label, value in rows]
    rows += [
        [f"GET /v2/, concurrency {concurrency}, bare uvloop protocol, default workers", fmt(rate), "req/s"]
        for concurrency, rate in sorted(limits.python_base_rps.items())
    ]
    return table(["Machine limit", "value", "unit"], rows, "lrl")


def other_load(run: Run) -> str:
    """How busy the rest of the machine was while the benchmark measured, in cores."""
    shares = sorted(
        o.other_cpu / o.wall
        for per_server in run.observations.values()
        for observations in per_server.values()
        for o in observations
        if o.wall > 0
    )
    if not shares:
        return "none measured"
    return (
        f"median {statistics.median(shares):.2f} cores, 90th percentile "
        f"{shares[int(0.9 * (len(shares) - 1))]:.2f}, max {shares[-1]:.2f} "
        f"(of {os.cpu_count()}; above ~0.2 the numbers are noisy)"
    )


def render(run: Run) -> str:
    meta_items = {**run.meta, "other processes' CPU during measurements": other_load(run)}
    meta = "\n".join(f"- {name}: {value}" for name, value in meta_items.items())
    parts = [
        f"## Run\n\n{meta}",
        "## Results\n\n" + main_table(run),
    ]
    if run.references:
        parts.append(
            "## Pulls against nginx serving the file, measured in the same repetitions\n\n"
            + shares_table(run)
        )
    if run.limits is not None:
        parts.append("## Machine limits (same run)\n\n" + limits_table(run.limits))
    if any(case.unit == "req/s" and case.key in run.observations for case in run.cases):
        parts.append("## Small requests: latency and CPU per request\n\n" + small_request_table(run))
    parts.append("## CPU and memory per workload (medians)\n\n" + resources_table(run))
    if run.process_peaks:
        parts.append("## Peak RSS of each server process over the run\n\n" + processes_table(run))
    return "\n\n".join(parts) + "\n"
