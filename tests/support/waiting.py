"""Waiting for a condition, bounded, instead of sleeping a fixed time and hoping it was enough: a
loaded machine can take many times longer than a quiet one, and a fixed sleep long enough for
the slowest makes every run slow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 60.0
"""Far longer than any awaited event takes on a busy machine; a test only waits this long when
what it waits for is broken."""


def until(
    check: Callable[[], T | None], timeout: float = TIMEOUT, interval: float = 0.1, what: str = ""
) -> T:
    """The first true value ``check`` returns; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting {what or 'for a condition'}")
        time.sleep(interval)
    return result


def eventually(block: Callable[[], T], timeout: float = TIMEOUT, interval: float = 0.1) -> T:
    """What ``block`` returns once it runs without failing an assertion; after ``timeout`` seconds
    its last assertion error is raised, so the test reports what did not hold."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return block()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


async def until_awaited(check: Callable[[], T | None], interval: float = 0.1, what: str = "") -> T:
    """``until`` inside an event loop, for a condition no event announces: it sleeps without
    blocking the loop, whose timers run meanwhile; fails after ``TIMEOUT`` seconds."""
    deadline = time.monotonic() + TIMEOUT
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT} s waiting {what or 'for a condition'}")
        await asyncio.sleep(interval)
    return result
