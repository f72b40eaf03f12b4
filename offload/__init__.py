"""Blocking calls (disk, boto3, bcrypt, hashing) run in worker threads, for the whole code base.

``await to_thread(func, *args)`` runs ``func(*args)`` in a thread of one bounded pool per
process and returns its result or raises its exception. It replaces anyio's
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

__all__ = ["MAX_THREADS", "to_thread"]

MAX_THREADS = 40
"""Worker threads per process at most."""

_T = TypeVar("_T")
_V = TypeVar("_V")
_Args = TypeVarTuple("_Args")


class _Threads:
    """The process's pool, started by its first call."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="offload")
        return self._pool

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there, a first call starts new ones."""
        self._pool = None


_threads = _Threads()
os.register_at_fork(after_in_child=_threads.forget)


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
    """``func(*args)`` in a worker thread."""
    call: _Call[_T] = _Call(asyncio.get_running_loop())
    started: Future[None] = _threads.pool().submit(call.run, func, args)
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
