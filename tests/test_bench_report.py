"""The bench's pull rows are judged against nginx measured in the same repetitions: the share is
the median of per-repetition ratios, not a ratio of medians, and a row's verdict follows it."""

from __future__ import annotations

from collections.abc import Callable

from bench.measure import Case, Observation, Outcome
from bench.references import NGINX_TLS
from bench.report import Run, render, verdict
from bench.servers import Server
from bench.settings import full

CANDIDATE, BASELINES = "Dockyard", ["Distribution 2.8", "Distribution 3.1"]
AHEAD = [1.0, 1.5]
"""Speedups over 2.8 (no bar through TLS) and over 3.1 (ahead): only the share of nginx decides."""


def observation(value: float) -> Observation:
    return Observation(value, 0.1, 0.1, 0.0, 1.0, 1 << 20, {})


def never_prepared(server: Server) -> Callable[[], Outcome]:
    raise AssertionError("the report runs nothing")


def pull_run(candidate: list[float], references: list[float]) -> tuple[Run, Case]:
    case = Case(
        "tls-pull-full",
        "pull, through nginx TLS",
        "MB/s",
        True,
        never_prepared,
        reference=NGINX_TLS,
    )
    observations = {
        case.key: {server: [observation(value) for value in candidate] for server in [CANDIDATE, *BASELINES]}
    }
    run = Run(
        full(len(candidate)),
        CANDIDATE,
        BASELINES,
        [case],
        observations,
        None,
        references={case.key: [observation(value) for value in references]},
    )
    return run, case


def test_the_share_is_the_median_of_same_repetition_ratios() -> None:
    # Ratios 1.0, 0.5, 2.0: median 100%. Medians alone would say 200 / 150 = 133%.
    run, case = pull_run([100.0, 200.0, 300.0], [100.0, 400.0, 150.0])
    assert run.shares(case.key, CANDIDATE) == [1.0, 0.5, 2.0]
    text, met = verdict(run, case, AHEAD)
    assert "(100%)" in text
    assert met == "yes"


def test_a_row_below_80_percent_of_its_references_is_not_met() -> None:
    # Ratios 0.5, 1.11, 0.5: median 50%, though the row's median (100) is 111% of the references' (90).
    run, case = pull_run([100.0, 100.0, 100.0], [200.0, 90.0, 200.0])
    text, met = verdict(run, case, AHEAD)
    assert "(50%)" in text
    assert met == "**no**"


def test_the_report_shows_the_references_and_each_registrys_share() -> None:
    run, _case = pull_run([100.0, 200.0, 300.0], [100.0, 400.0, 150.0])
    text = render(run)
    assert "## Pulls against nginx serving the file, measured in the same repetitions" in text
    row = next(line for line in text.splitlines() if line.startswith("| pull, through nginx TLS | nginx TLS"))
    assert "150 (100 to 400)" in row  # the reference's MB/s
    assert "100% (50% to 200%)" in row  # each registry's share: median (min to max)
