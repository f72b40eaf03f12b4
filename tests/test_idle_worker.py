"""An idle worker wakes about once a second, to renew the ``date`` of its answers, where uvicorn's
server woke ten times, and the date stays current (a stop signal's prompt effect:
``tests/integrity/test_graceful_stop.py``)."""

from __future__ import annotations

import calendar
import re
import time
from email.utils import parsedate
from pathlib import Path

import httpx

from tests.integrity.workers import traced
from tests.support.registry import StartRegistry

WATCHED = 4.0
"""Seconds an idle worker is traced."""
SLEEP = re.compile(r"^\d+\s+epoll_p?wait\(\d+, .*?, \d+, (-?\d+)", re.MULTILINE)
"""A wait for events and its timeout in milliseconds: those with one are the worker's sleeps."""


def test_an_idle_worker_wakes_about_once_a_second(start_registry: StartRegistry, tmp_path: Path) -> None:
    registry = start_registry(workers=1)
    assert registry.process is not None
    out = tmp_path / "strace.out"
    with traced(registry.process.pid, "epoll_pwait,epoll_wait", out):
        time.sleep(WATCHED)
    sleeps = [timeout for timeout in SLEEP.findall(out.read_text()) if timeout != "0"]
    assert 0 < len(sleeps) <= 2 * WATCHED  # ten a second would be 40


def test_answers_are_dated_with_the_current_second(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=1)
    seen = set()
    with httpx.Client(base_url=f"http://127.0.0.1:{registry.port}") as client:
        deadline = time.time() + 3.5
        while time.time() < deadline:
            before = int(time.time())
            response = client.get("/v2/")
            after = int(time.time())
            parsed = parsedate(response.headers["date"])
            assert parsed is not None
            dated = calendar.timegm(parsed)
            # A moment late at a second's turn (the renewal is a timer of the event loop), never ahead.
            assert before - 1 <= dated <= after
            seen.add(dated)
            time.sleep(0.05)
    assert len(seen) >= 3
