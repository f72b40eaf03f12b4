"""The HTTP/2 rows' rate is read from h2load's summary: the requests it sent, over the time it
took for them (not a duration given to it), and only when every one was answered 2xx."""

from __future__ import annotations

import pytest

from bench.http import HTTPError
from bench.workloads.tls import h2load_outcome


def summary(
    finished: str, succeeded: int = 16000, failed: int = 0, statuses: str = "16000 2xx, 0 3xx, 0 4xx, 0 5xx"
) -> str:
    """h2load 1.52's output, as printed for a run of 16 connections, 1,000 requests each."""
    done = succeeded + failed
    return (
        "starting benchmark...\n"
        "spawning thread #0: 16 total client(s). 16000 total requests\n"
        "TLS Protocol: TLSv1.3\n"
        "Cipher: TLS_AES_256_GCM_SHA384\n"
        "Server Temp Key: X25519 253 bits\n"
        "Application protocol: h2\n"
        "progress: 10% done\n"
        "progress: 100% done\n"
        "\n"
        f"finished in {finished}, 12307.69 req/s, 2.14MB/s\n"
        f"requests: 16000 total, 16000 started, {done} done, {succeeded} succeeded, {failed} failed, "
        "0 errored, 0 timeout\n"
        f"status codes: {statuses}\n"
        "traffic: 2.78MB (2918512) total, 1.79MB (1872000) headers (space savings 39.88%), "
        "31.25KB (32000) data\n"
        "                     min         max         mean         sd        +/- sd\n"
        "time for request:       97us     31.58ms      1.28ms      2.39ms    87.32%\n"
        "time for connect:    20.67ms     39.86ms     37.46ms      6.05ms    87.50%\n"
        "time to 1st byte:    39.32ms     40.86ms     40.37ms       432us    81.25%\n"
        "req/s           :     769.84      776.76      773.36        2.77    50.00%\n"
    )


def test_the_rate_is_the_requests_over_the_time_h2load_took() -> None:
    outcome = h2load_outcome(summary("1.30s"), 16000, "GET /v2/")
    assert outcome.value == pytest.approx(16000 / 1.30)
    assert outcome.extra == {"requests": 16000.0, "mean_ms": pytest.approx(1.28)}
    # Two runs of different lengths give different rates (a fixed duration gave 5,333 for all).
    assert h2load_outcome(summary("2.60s"), 16000, "GET /v2/").value == pytest.approx(outcome.value / 2)


def test_a_run_shorter_than_a_second_is_read_in_milliseconds() -> None:
    outcome = h2load_outcome(summary("524.08ms"), 16000, "GET /v2/")
    assert outcome.value == pytest.approx(16000 / 0.52408)


@pytest.mark.parametrize(
    ("succeeded", "failed", "statuses"),
    [
        # A connection closed early (nginx's keepalive_requests below 1,000): fewer requests done.
        (15000, 0, "15000 2xx, 0 3xx, 0 4xx, 0 5xx"),
        # Errors answered: counted as failed, and by status.
        (15990, 10, "15990 2xx, 0 3xx, 10 4xx, 0 5xx"),
        (15999, 1, "15999 2xx, 0 3xx, 0 4xx, 1 5xx"),
    ],
)
def test_a_run_with_requests_missing_or_refused_is_an_error(
    succeeded: int, failed: int, statuses: str
) -> None:
    with pytest.raises(HTTPError, match="expected 16000 2xx"):
        h2load_outcome(summary("1.30s", succeeded, failed, statuses), 16000, "GET /v2/")


def test_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(HTTPError, match="no h2load summary"):
        h2load_outcome("starting benchmark...\nNo protocol negotiated. Aborted\n", 16000, "GET /v2/")
