"""Blocking calls (disk, boto3, bcrypt, hashing) run in worker threads, for the whole code base.

``await to_thread(func, *args)`` runs ``func(*args)`` in a thread of a bounded pool per process
and returns its result or raises its exception; ``to_bulk_thread`` does the same in a pool of its
own for calls that move or hash much data or burn CPU (bcrypt). The two differ only once a
worker is kept to one CPU (``keep_to_cpu``). ``to_thread`` replaces anyio's
``to_thread.run_sync``, which costs about three times the CPU per call (a capacity limiter, a
cancel scope and two event loop turns per call), and keeps what the callers rely on:

- A call that has started is never abandoned: a cancelled caller waits for it to finish, drops
  its result, then sees the cancellation. Callers close files and remove directories when they
  are cancelled; the thread must be done with them by then. (anyio waited in the same way when
  cancelled through its cancel scopes, as Starlette cancels; a bare ``Task.cancel`` let the
  caller go at once while the thread went on.) A call cancelled before a thread took it never
  runs, as one waiting for anyio's limiter.
- At most ``MAX_THREADS`` threads per process (anyio's default bound); further calls queue.
- The call does not see the caller's context variables: nothing that runs in these threads
  reads any.

A worker process kept to one CPU keeps its event loop there, and the threads of ``to_thread``
with it: a hop to a thread on another CPU has to wake that CPU, which on a virtual machine goes
through the hypervisor, and so does the answer; on the machines measured that doubled a hop's
CPU (``bench/SMALL.md``). A short call loses nothing by sharing the event loop's CPU, which waits
for it anyway. Bulk work would take that CPU from the event loop, so the threads of
``to_bulk_thread``, and any process the worker forks, keep every CPU the process had.

It imports nothing of the registry, auth or the drivers, so each of them can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar, TypeVarTuple

import anyio

__all__ = ["MAX_THREADS", "keep_to_cpu", "to_bulk_thread", "to_thread"]

MAX_THREADS = 40
"""Threads of each pool per process at most."""

_T = TypeVar("_T")
_V = TypeVar("_V")
_Args = TypeVarTuple("_Args")


class _Placement:
    """Where the process's threads run: ``process_cpus`` is None until ``keep_to_cpu``."""

    def __init__(self) -> None:
        self.process_cpus: set[int] | None = None

    def spread(self) -> None:
        """Let the calling thread run on every CPU the process had."""
        if self.process_cpus is not None:
            with contextlib.suppress(OSError):  # a CPU taken offline since: it stays where it is
                os.sched_setaffinity(0, self.process_cpus)

    def forget(self) -> None:
        """In a forked child: a process of its own, on every CPU its parent had."""
        self.spread()
        self.process_cpus = None


_placement = _Placement()


def keep_to_cpu(cpu: int) -> None:
    """Keep the calling thread (the event loop's) and the threads ``to_thread`` starts from now on
    to ``cpu``; raises OSError when the process may not run there."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    _placement.process_cpus = cpus


class _Threads:
    """One of the process's pools, started by its first call."""

    def __init__(self, name: str, spread: bool) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._name = name
        self._spread = spread

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            # A new thread inherits its creator's CPUs: the event loop's, when kept to one.
            starting = _placement.spread if self._spread else None
            self._pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix=self._name, initializer=starting)
        return self._pool

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there, a first call starts new ones."""
        self._pool = None


_threads = _Threads("offload", spread=False)
_bulk_threads = _Threads("offload-bulk", spread=True)
os.register_at_fork(after_in_child=_placement.forget)
os.register_at_fork(after_in_child=_threads.forget)
os.register_at_fork(after_in_child=_bulk_threads.forget)


class _Call(Generic[_T]):
    """One call's hand-over: the thread reports to the event loop once, ``waiter`` is whatever
    future the caller awaits at that moment."""

    __slots__ = ("finished", "loop", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiter: asyncio.Future[_T] = loop.create_future()
        self.finished = False

    def run(self, func: Callable[[*_Args], _T], args: tuple[*_Args]) -> None:
        """In the worker thread."""
        try:
            result = func(*args)
        except BaseException as exc:  # handed to the caller
            self._report(self._failed, exc)
        else:
            self._report(self._succeeded, result)

    def _report(self, settle: Callable[[_V], None], value: _V) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(settle, value)

    def _succeeded(self, result: _T) -> None:
        self.finished = True
        if not self.waiter.done():
            self.waiter.set_result(result)

    def _failed(self, exc: BaseException) -> None:
        self.finished = True
        if not self.waiter.done():
            self.waiter.set_exception(exc)


async def to_thread(func: Callable[[*_Args], _T], *args: *_Args) -> _T:
    """``func(*args)`` in a worker thread: for calls of a few system calls."""
    return await _in(_threads, func, args)


async def to_bulk_thread(func: Callable[[*_Args], _T], *args: *_Args) -> _T:
    """``func(*args)`` in a worker thread free to run on any CPU of the process: for calls that
    move or hash much data, or burn CPU."""
    return await _in(_bulk_threads, func, args)


async def _in(threads: _Threads, func: Callable[[*_Args], _T], args: tuple[*_Args]) -> _T:
    call: _Call[_T] = _Call(asyncio.get_running_loop())
    started: Future[None] = threads.pool().submit(call.run, func, args)
    try:
        return await call.waiter
    except asyncio.CancelledError:
        if call.finished or started.cancel():  # raised by ``func``, or never started
            raise
        await _until_finished(call)
        raise


async def _until_finished(call: _Call[_T]) -> None:
    """Wait out a running call whose caller was cancelled. The shield stops anyio from
    cancelling the task again on every loop turn meanwhile; a bare ``Task.cancel`` still comes
    through, and is waited out too."""
    with anyio.CancelScope(shield=True):
        while not call.finished:
            call.waiter = call.loop.create_future()
            with contextlib.suppress(BaseException):  # the outcome is dropped: the caller was cancelled
                await call.waiter
