"""Work a worker runs beside its requests for as long as something lasts (its lifespan, a
layer's life): started as tasks on entry, cancelled and awaited on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

from storage_drivers import StorageError


@contextlib.asynccontextmanager
async def running_beside(*work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(each) for each in work]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.contextmanager
def one_round(log: logging.Logger, what: str) -> Iterator[None]:
    """One round of a periodic task: a failure is logged and the next round tries again. A storage
    outage is one warning line; anything else is a fault of the registry, with its traceback."""
    try:
        yield
    except StorageError as exc:
        log.warning("%s stopped, the storage failed: %s; retrying at the next interval", what, exc)
    except Exception:
        log.exception("%s failed; retrying at the next interval", what)
