"""One measurement of one case on one server, with the CPU and memory it cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.procstat import RssSampler, cpu_seconds, machine_task_seconds, own_cpu_seconds
from bench.servers import Server


@dataclass
class Outcome:
    """What a case function returns: its metric, details, and untimed cleanup to run after."""

    value: float
    extra: dict[str, float] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Case:
    """A table row: one timed operation, run on every server in every repetition."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    # Called with the server outside the measurement (untimed preparation); returns the timed part.
    prepare: Callable[[Server], Callable[[], Outcome]]
    target: float | None = None  # minimum speedup over Distribution 2.8 (from the issue)
    peer_target: float = 1.0  # minimum speedup over Distribution 3.1: ahead on every row
    note: str = ""
    redirected: bool = False
    """Measured on the server's redirecting twin (``Server.redirecting``, S3 runs): the registry
    answers blob GETs with presigned URLs and the client fetches from storage."""
    measured: Callable[[Server], Server] | None = None
    """The server whose processes the row measures, when the timed part reaches another instance
    of the registry than ``server`` (behind a front of its own)."""
    reference: str | None = None
    """A pull row's nginx reference (``bench.references``), measured in each of its repetitions
    beside the registries: the row must reach 80% of it."""


@dataclass
class Observation:
    value: float
    server_cpu: float  # seconds, all processes of the server
    client_cpu: float  # seconds, this process and its reaped children (wrk)
    other_cpu: float  # seconds of CPU used by anything else on the machine meanwhile
    wall: float
    peak_rss: int
    extra: dict[str, float]


def measure(server: Server, sampler: RssSampler, case: Case) -> Observation:
    timed = case.prepare(server)
    measured = server
    if case.redirected:
        if server.redirecting is None:
            raise ValueError(f"{case.key} needs {server.name} with a redirecting twin")
        measured = server.redirecting
    elif case.measured is not None:
        measured = case.measured(server)
        if not sampler.watching(measured.name):
            sampler.watch(measured.name, measured.pid)
    tree = sampler.tree(measured.name)
    sampler.reset_peak(measured.name)
    server_before = cpu_seconds(tree)
    client_before = own_cpu_seconds()
    busy_before = machine_task_seconds()
    started = time.perf_counter()
    outcome = timed()
    wall = time.perf_counter() - started
    busy = machine_task_seconds() - busy_before
    client = own_cpu_seconds() - client_before
    server_cpu = cpu_seconds(tree) - server_before
    observation = Observation(
        value=outcome.value,
        server_cpu=server_cpu,
        client_cpu=client,
        other_cpu=max(0.0, busy - server_cpu - client),
        wall=wall,
        peak_rss=sampler.peak(measured.name),
        extra=outcome.extra,
    )
    if outcome.cleanup is not None:
        outcome.cleanup()
    return observation
