"""Blocking calls (disk, boto3, bcrypt, hashing) run in worker threads, for the whole code base.

``await to_thread(func, *args)`` runs ``func(*args)`` in a thread of a bounded pool per process
and returns its result or raises its exception; ``to_bulk_thread`` does the same in a pool of its
own for calls that move or hash much data or burn CPU (bcrypt). The two differ only once a
worker's short calls follow its event loop (``follow_callers``). ``to_thread`` replaces anyio's
``to_thread.run_sync``, which costs about three times the CPU per call (a capacity limiter, a
cancel scope and two event loop turns per call), and keeps what the callers rely on:

- A call that has started is never abandoned: a cancelled caller waits for it to finish, drops
  its result, then sees the cancellation. Callers close files and remove directories when they
  are cancelled; the thread must be done with them by then. (anyio waited in the same way when
  cancelled through its cancel scopes, as Starlette cancels; a bare ``Task.cancel`` let the
  caller go at once while the thread went on.) A call cancelled before a thread took it never
  runs, as one waiting for anyio's limiter.
- At most ``MAX_THREADS`` threads per pool and process (anyio's default bound); further calls
  queue.
- The call does not see the caller's context variables: nothing that runs in these threads
  reads any.

Once a worker calls ``follow_callers``, each short call runs on the CPU its caller (the worker's
event loop) was on as it made the call, where the event loop then waits for it: a hop to a
thread on another CPU has to wake that CPU, which on a virtual machine goes through the
hypervisor, and so does the answer; on the machines measured that doubled a hop's CPU
(``bench/SMALL.md``). The event loop itself stays free to move, and its short calls' threads
move with it. Bulk work would take the event loop's CPU from it, so ``to_bulk_thread``'s
threads run wherever the kernel puts them.

It imports nothing of the registry, auth or the drivers, so each of them can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar, TypeVarTuple, cast

import anyio

__all__ = ["MAX_THREADS", "follow_callers", "to_bulk_thread", "to_thread"]

MAX_THREADS = 40
"""Threads of each pool per process at most."""

_T = TypeVar("_T")
_V = TypeVar("_V")
_Args = TypeVarTuple("_Args")


def _sched_getcpu() -> Callable[[], int] | None:
    """The C library's ``sched_getcpu`` (the CPU the calling thread runs on), if it has one."""
    try:
        getcpu = ctypes.CDLL(None).sched_getcpu
    except (AttributeError, OSError):
        return None
    getcpu.restype, getcpu.argtypes = ctypes.c_int, []
    return cast(Callable[[], int], getcpu)


class _Placement:
    """Whether short calls follow their callers' CPUs (``follow_callers``), and the CPU each
    thread of the short calls is kept to."""

    def __init__(self) -> None:
        self.callers_cpu: Callable[[], int] | None = None
        self.thread_cpu = threading.local()

    def move_here(self, cpu: int) -> None:
        """In a short call's thread: run on ``cpu`` from now on (a move only when its caller's
        event loop moved since this thread's last call)."""
        if getattr(self.thread_cpu, "cpu", None) != cpu:
            with contextlib.suppress(OSError):  # a CPU taken offline since: it stays where it is
                os.sched_setaffinity(0, {cpu})
            self.thread_cpu.cpu = cpu


_placement = _Placement()


def follow_callers() -> bool:
    """From now on, run each short call on the CPU its caller ran on as it made the call; False
    where the C library cannot tell a thread its CPU, and nothing changes."""
    _placement.callers_cpu = _sched_getcpu()
    return _placement.callers_cpu is not None


class _Threads:
    """One of the process's pools, started by its first call."""

    def __init__(self, name: str) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._name = name

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix=self._name)
        return self._pool

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there, a first call starts new ones."""
        self._pool = None


_threads = _Threads("offload")
_bulk_threads = _Threads("offload-bulk")
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

    def run(self, func: Callable[[*_Args], _T], args: tuple[*_Args], cpu: int | None) -> None:
        """In the worker thread; ``cpu``: the caller's, for a short call that follows it."""
        if cpu is not None:
            _placement.move_here(cpu)
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
    callers_cpu = _placement.callers_cpu
    return await _in(_threads, func, args, None if callers_cpu is None else callers_cpu())


async def to_bulk_thread(func: Callable[[*_Args], _T], *args: *_Args) -> _T:
    """``func(*args)`` in a worker thread free to run on any CPU of the process: for calls that
    move or hash much data, or burn CPU."""
    return await _in(_bulk_threads, func, args, None)


async def _in(threads: _Threads, func: Callable[[*_Args], _T], args: tuple[*_Args], cpu: int | None) -> _T:
    call: _Call[_T] = _Call(asyncio.get_running_loop())
    started: Future[None] = threads.pool().submit(call.run, func, args, cpu)
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
