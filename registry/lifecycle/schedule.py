"""Online garbage collection on a schedule, inside the server (``storage.maintenance.garbagecollect``).

Every ``interval`` one worker of a server runs a collection, then writes the usage record from
its walk (``usage``). Which worker: the one holding an exclusive lock on a file the
server's supervisor opened for its workers (``SCHEDULER_LOCK_ENV``); the others wait for it to
die and take over. Between servers or replicas on one storage the maintenance lease decides
(``lease``): a run that finds it busy is skipped with a log line and tried again at the next
interval. A run goes on a thread with an event loop and a storage driver of its own, so walking
and planning never hold up the worker's requests.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading

from offload import to_bulk_thread
from storage_drivers import StorageError, create_driver

from ..config import Config
from .collect import Options
from .lease import LeaseBusy, LeaseLost
from .usage import collect_and_record

SCHEDULER_LOCK_ENV = "DOCKYARD_SCHEDULER_LOCK"
"""The path (``/proc/self/fd/N``) of a file the workers of one server lock to choose the one
that runs the schedule; without it (the process was started otherwise) the process runs it."""

log = logging.getLogger("registry")


def scheduled_options(config: Config) -> Options:
    """The options of a scheduled run: the one place they are built from the configuration. The
    retention rules, when configured, apply to every scheduled run."""
    settings = config.storage.garbage_collect
    return Options(
        dry_run=False,
        delete_untagged=settings.delete_untagged,
        grace_period=settings.grace_period,
        retention=config.storage.retention,
    )


async def collect_forever(config: Config) -> None:
    """Run a collection every interval, from one interval after start, until cancelled."""
    interval = config.storage.garbage_collect.interval
    lock = WorkerLock(os.environ.get(SCHEDULER_LOCK_ENV) or None)
    try:
        while True:
            await asyncio.sleep(interval)
            if not lock.held():
                continue  # another worker of this server runs the schedule
            run = _Run(config)
            try:
                await asyncio.shield(to_bulk_thread(run.run))
            except asyncio.CancelledError:
                run.stop()  # shutting down: the run releases its lease, then its thread ends
                raise
    finally:
        lock.release()


class WorkerLock:
    """An exclusive lock on a file, taken without waiting and kept until the process ends (or
    ``release``): the kernel drops it when its holder dies, and another worker takes it. Each
    worker opens the file itself, even when it inherited a descriptor of it: a lock belongs to
    one opening, and an inherited one would be every worker's."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._fd: int | None = None

    def held(self) -> bool:
        """Whether this process holds the lock, taking it when it is free; no path: always."""
        if self._path is None or self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Run:
    """One scheduled run, on the calling thread, with an event loop and a driver of its own."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._guard = threading.Lock()

    def run(self) -> None:
        asyncio.run(self._main())

    def stop(self) -> None:
        with self._guard:
            self._stopped = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)

    async def _main(self) -> None:
        with self._guard:
            if self._stopped:
                return
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        storage = self._config.storage
        driver = create_driver(storage.driver, storage.parameters)
        try:
            await collect_and_record(driver, scheduled_options(self._config), lambda line: None)
        except LeaseBusy as exc:
            log.info("scheduled garbage collection skipped: another run holds the lease (%s)", exc)
        except LeaseLost as exc:
            log.warning("scheduled garbage collection stopped: %s; the next run finishes it", exc)
        except StorageError as exc:
            log.warning("scheduled garbage collection stopped, the storage failed: %s", exc)
        except asyncio.CancelledError:
            log.info("scheduled garbage collection interrupted by shutdown; the next run finishes it")
        except Exception:
            log.exception("scheduled garbage collection failed; trying again at the next interval")
        finally:
            with self._guard:
                self._loop = None  # closing: a stop() from now on has nothing to cancel
            await driver.close()
