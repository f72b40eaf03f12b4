"""The thread hop every blocking call takes: results, errors, cancellation, the bound, forks, and
where the threads run once short calls follow their callers."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from offload import MAX_THREADS, follow_callers, to_bulk_thread, to_thread

Hop = Callable[..., Awaitable[Any]]


class Gate:
    """A call that blocks in its thread until opened, and records that it ran to its end."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.finished = threading.Event()

    def call(self) -> str:
        self.entered.set()
        self.opened.wait(10)
        time.sleep(0.05)  # a caller that did not wait would see the cancellation meanwhile
        self.finished.set()
        return "done"


async def entered(gate: Gate) -> None:
    await to_thread(gate.entered.wait, 10)
    assert gate.entered.is_set()


@pytest.mark.parametrize("hop", [to_thread, to_bulk_thread])
async def test_the_result_and_the_error_come_back_from_another_thread(hop: Hop) -> None:
    assert await hop(threading.get_ident) != threading.get_ident()
    assert await hop(divmod, 7, 2) == (3, 1)
    with pytest.raises(ZeroDivisionError):
        await hop(divmod, 1, 0)


async def test_a_cancelled_caller_waits_for_the_running_call() -> None:
    gate = Gate()
    calling = asyncio.create_task(to_thread(gate.call))
    await entered(gate)
    calling.cancel()
    gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert gate.finished.is_set(), "the caller went on while its call still ran"


async def test_cancelling_again_while_waiting_is_waited_out_too() -> None:
    gate = Gate()
    calling = asyncio.create_task(to_thread(gate.call))
    await entered(gate)
    for _ in range(3):
        calling.cancel()
        await asyncio.sleep(0.01)
        assert not calling.done(), "a second cancel let the caller go while its call ran"
    gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert gate.finished.is_set()


async def test_an_anyio_cancel_scope_waits_for_the_running_call() -> None:
    """As Starlette cancels a response whose client went away."""
    gate = Gate()
    outcome: list[str] = []

    async def call_then_record() -> None:
        outcome.append(await to_thread(gate.call))

    async with anyio.create_task_group() as group:
        group.start_soon(call_then_record)
        await entered(gate)
        group.cancel_scope.cancel()
        gate.opened.set()
    assert gate.finished.is_set(), "the scope ended while the call still ran"
    assert outcome == [], "the cancelled caller went on with the result"


async def test_a_timeout_waits_for_the_call_then_reports_itself() -> None:
    gate = Gate()

    async def limited() -> None:
        async with asyncio.timeout(0.1):
            await to_thread(gate.call)

    threading.Timer(0.3, gate.opened.set).start()
    with pytest.raises(TimeoutError):
        await limited()
    assert gate.finished.is_set()


async def test_threads_are_bounded_and_a_call_cancelled_before_it_starts_never_runs() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()
    late_ran = threading.Event()

    def held() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(10)
        with lock:
            running -= 1

    holding = [asyncio.create_task(to_thread(held)) for _ in range(MAX_THREADS + 5)]
    late = asyncio.create_task(to_thread(late_ran.set))
    for _ in range(6000):  # a minute at most: starting forty threads on a loaded machine
        if most == MAX_THREADS:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # room for a call beyond the bound to start, which it must not
    assert most == MAX_THREADS, f"{most} calls ran at once"
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    release.set()
    await asyncio.gather(*holding)
    assert most == MAX_THREADS
    await to_thread(time.sleep, 0.05)  # every queued call has been taken by now
    assert not late_ran.is_set(), "a call cancelled while queued ran anyway"


async def test_a_forked_child_starts_threads_of_its_own() -> None:
    """The workers are forked from a process that may have made calls already."""
    await to_thread(time.sleep, 0)
    pid = os.fork()
    if pid == 0:  # the child: its event loop, its own threads
        code = 1
        try:
            answer: Callable[[], int] = lambda: 42  # noqa: E731
            code = 0 if asyncio.run(asyncio.wait_for(to_thread(answer), 10)) == 42 else 1
        finally:
            os._exit(code)
    _, status = await to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="with one CPU every thread runs there")
async def test_following_its_callers_a_short_call_runs_on_the_callers_cpu_a_bulk_call_anywhere() -> None:
    """In a forked child, as a worker would be, so that this process's calls do not follow."""
    everywhere = os.sched_getaffinity(0)
    first, second = sorted(everywhere)[:2]

    def affinity() -> set[int]:
        return os.sched_getaffinity(0)  # the calling thread's

    async def placements() -> list[object]:
        seen: list[object] = [await to_thread(affinity)]
        seen.append(follow_callers())
        for cpu in (first, second, first):  # the event loop moves: its calls' threads follow
            os.sched_setaffinity(0, {cpu})
            seen.append(await to_thread(affinity))
        os.sched_setaffinity(0, everywhere)  # as an event loop is: a new thread inherits it
        seen.append(await to_bulk_thread(affinity))
        return seen

    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(writing, repr(asyncio.run(asyncio.wait_for(placements(), 10))).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as report:
        seen = await to_thread(report.read)
    await to_thread(os.waitpid, pid, 0)
    assert seen == repr([everywhere, True, {first}, {second}, {first}, everywhere])
    assert await to_thread(affinity) == everywhere
