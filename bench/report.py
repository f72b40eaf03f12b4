"""Turning observations into the tables: medians, ranges, speedups, targets."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from bench.limits import Limits
from bench.measure import Case, Observation
from bench.settings import Settings

MiB = 1 << 20
RSS_LIMIT_MIB = 150
PULL_SHARE_OF_NGINX = 0.8


@dataclass
class Run:
    """Everything one benchmark run measured, in the order it ran."""

    settings: Settings
    candidate: str  # label of slot A
    baseline: str  # label of slot B
    cases: list[Case]
    observations: dict[str, dict[str, list[Observation]]]  # case key -> server -> per repetition
    limits: Limits | None
    meta: dict[str, str] = field(default_factory=dict)
    process_peaks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def values(self, key: str, server: str) -> list[float]:
        return [o.value for o in self.observations[key][server]]

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


def verdict(run: Run, case: Case, ratio: float) -> tuple[str, str]:
    """(target text, met?) for a case; met means strictly better than the issue's target."""
    if case.target is None:
        return "", ""
    target = f"> {case.target}x"
    met = ratio > case.target
    if case.key == "pull-full" and run.limits is not None:
        share = statistics.median(run.values(case.key, run.candidate)) / run.limits.nginx_mbps
        target += f", >= 80% nginx ({share:.0%})"
        met = met and share >= PULL_SHARE_OF_NGINX
    return target, "yes" if met else "**no**"


def table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(run: Run) -> str:
    a, b = run.candidate, run.baseline
    rows = []
    for case in run.cases:
        if case.key not in run.observations:
            continue
        va, vb = run.values(case.key, a), run.values(case.key, b)
        ratio = speedup(case, va, vb)
        target, met = verdict(run, case, ratio)
        label = case.label + (f" ({case.note})" if case.note else "")
        rows.append([label, case.unit, spread(va), spread(vb), f"{ratio:.2f}x", target, met])
    peaks_a, peaks_b = run.rep_peaks(a), run.rep_peaks(b)
    if peaks_a:
        met = "yes" if max(peaks_a) < RSS_LIMIT_MIB else "**no**"
        ratio = statistics.median(peaks_b) / statistics.median(peaks_a)
        rows.append(
            [
                "server peak RSS, all processes (per repetition)",
                "MiB",
                spread(peaks_a),
                spread(peaks_b),
                f"{ratio:.2f}x",
                f"< {RSS_LIMIT_MIB} MiB",
                met,
            ]
        )
    headers = [
        "Workload",
        "Unit",
        f"{a} median (min-max)",
        f"{b} median (min-max)",
        "Speedup",
        "Target",
        "Met",
    ]
    return table(headers, rows, "llrrrll")


def small_request_table(run: Run) -> str:
    a, b = run.candidate, run.baseline
    rows = []
    for case in run.cases:
        if case.unit != "req/s" or case.key not in run.observations:
            continue
        oa, ob = run.observations[case.key][a], run.observations[case.key][b]

        def med(observations: list[Observation], name: str) -> float:
            return statistics.median([o.extra[name] for o in observations])

        def per_request(observations: list[Observation], attribute: str) -> float:
            values = [float(getattr(o, attribute)) / o.extra["requests"] * 1e6 for o in observations]
            return statistics.median(values)

        rows.append(
            [
                case.label,
                f"{fmt(med(oa, 'p50_ms'))} / {fmt(med(ob, 'p50_ms'))}",
                f"{fmt(med(oa, 'p99_ms'))} / {fmt(med(ob, 'p99_ms'))}",
                f"{fmt(per_request(oa, 'server_cpu'))} / {fmt(per_request(ob, 'server_cpu'))}",
                f"{fmt(per_request(oa, 'client_cpu'))} / {fmt(per_request(ob, 'client_cpu'))}",
            ]
        )
    headers = [
        "Request",
        f"p50 ms ({a} / {b})",
        "p99 ms",
        "server CPU µs/request",
        "client CPU µs/request (wrk; HEAD: bench.loadgen)",
    ]
    return table(headers, rows)


def resources_table(run: Run) -> str:
    a, b = run.candidate, run.baseline
    rows = []
    for case in run.cases:
        if case.key not in run.observations:
            continue
        oa, ob = run.observations[case.key][a], run.observations[case.key][b]

        def med(observations: list[Observation], attribute: str, scale: float = 1.0) -> str:
            return fmt(statistics.median(getattr(o, attribute) / scale for o in observations))

        def other(observations: list[Observation]) -> str:
            return fmt(max(o.other_cpu / o.wall for o in observations))

        rows.append(
            [
                case.label,
                f"{med(oa, 'server_cpu')} / {med(ob, 'server_cpu')}",
                f"{med(oa, 'client_cpu')} / {med(ob, 'client_cpu')}",
                f"{med(oa, 'peak_rss', MiB)} / {med(ob, 'peak_rss', MiB)}",
                f"{other(oa)} / {other(ob)}",
            ]
        )
    headers = [
        f"Workload ({a} / {b})",
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


def limits_table(limits: Limits) -> str:
    rows = [
        ["sha256 on one core (hashlib, 16 MiB buffers)", fmt(limits.sha256_mbps)],
        ["disk write + fsync, buffered 16 MiB writes (benchmark temp dir)", fmt(limits.disk_fsync_mbps)],
        ["disk write + fsync, 4 MiB O_DIRECT writes (as Dockyard uploads)", fmt(limits.disk_direct_mbps)],
        ["loopback HTTP, nginx sendfile, verifying client (as the pulls)", fmt(limits.nginx_mbps)],
        ["loopback HTTP, nginx sendfile, client discards", fmt(limits.nginx_discard_mbps)],
    ]
    return table(["Machine limit", "MB/s"], rows)


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
    if run.limits is not None:
        parts.append("## Machine limits (same run)\n\n" + limits_table(run.limits))
    if any(case.unit == "req/s" and case.key in run.observations for case in run.cases):
        parts.append("## Small requests: latency and CPU per request\n\n" + small_request_table(run))
    parts.append("## CPU and memory per workload (medians)\n\n" + resources_table(run))
    if run.process_peaks:
        parts.append("## Peak RSS of each server process over the run\n\n" + processes_table(run))
    return "\n\n".join(parts) + "\n"
