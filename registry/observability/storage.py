"""Storage driver calls timed and their failures counted, by action, around any driver.

The action names are Distribution's (``registry_storage_action_seconds``), so its storage
panels work unchanged. A reader is timed to its first chunk and a walk to its end: what a
request waits for before it can answer.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from time import perf_counter
from typing import Any, ClassVar, TypeVar

from storage_drivers import (
    FileInfo,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageFull,
    StorageReadOnly,
    StorageUnavailable,
)

from .metrics import Metrics
from .tally import PendingHistogram

T = TypeVar("T")
STORAGE_ACTIONS = (
    "GetContent", "PutContent", "Reader", "Writer", "Stat", "List", "Move", "Delete", "RedirectURL",
    "PurgeIncomplete", "Walk", "Scan",
)  # fmt: skip
"""Timed from the start: their series are there before the first call."""
BATCH_ACTIONS = (
    "PutMany", "CreateContent", "ListMany", "StatMany", "GetMany", "DeleteMany", "OpenLocal",
)  # fmt: skip
"""Timed once per batch (or for drivers that have the call), each series shown once used."""


def error_label(exc: BaseException) -> str:
    """A few fixed words, never the message: the series stay bounded."""
    for kind, label in (
        (PathNotFound, "not_found"),
        (InvalidPath, "invalid_path"),
        (InvalidOffset, "invalid_offset"),
        (StorageUnavailable, "unavailable"),
        (StorageFull, "full"),
        (StorageReadOnly, "read_only"),
    ):
        if isinstance(exc, kind):
            return label
    return "other"


class _Action:
    """One action's timing and failures. A fixed action's histogram is there from the start; a
    batch's (``ListMany``, ``StatMany``, ...) shows once a batch is made."""

    __slots__ = ("driver_name", "metrics", "name", "seconds")

    def __init__(self, name: str, metrics: Metrics, driver_name: str, shown: bool) -> None:
        self.name = name
        self.metrics = metrics
        self.driver_name = driver_name
        self.seconds = self._histogram() if shown else None

    def _histogram(self) -> PendingHistogram:
        return self.metrics.histogram(self.metrics.storage_seconds, self.name, self.driver_name)

    async def timed(self, call: Awaitable[T]) -> T:
        started = perf_counter()
        try:
            return await call
        except Exception as exc:
            self.failed(exc)
            raise
        finally:
            seconds = self.seconds
            if seconds is None:
                seconds = self.seconds = self._histogram()
            seconds.observe(perf_counter() - started)

    def failed(self, exc: Exception) -> None:
        metrics = self.metrics
        metrics.add(metrics.storage_errors, self.name, self.driver_name, error_label(exc))


class ObservedDriver(StorageDriver):
    """Delegates every call to ``driver`` (paths are checked once, by this wrapper's public
    methods) and records each call's duration and failure.

    The delegating methods hand back the timed call's coroutine rather than awaiting it in one
    of their own: a coroutine less per storage call."""

    name: ClassVar[str] = "observed"

    def __init__(self, driver: StorageDriver, metrics: Metrics) -> None:
        self.driver = driver
        self.unfinished_reads = driver.unfinished_reads
        self.creates_exclusively = driver.creates_exclusively
        self.deletes_exactly = driver.deletes_exactly
        self.listing_carries_stats = driver.listing_carries_stats
        self.reads_are_round_trips = driver.reads_are_round_trips
        self.batches_in_flight = driver.batches_in_flight
        self.upload_memory = driver.upload_memory
        self._actions = {
            action: _Action(action, metrics, driver.name, action in STORAGE_ACTIONS)
            for action in (*STORAGE_ACTIONS, *BATCH_ACTIONS)
        }
        actions = self._actions
        self._get_content_timed = actions["GetContent"].timed
        self._stat_timed = actions["Stat"].timed

    def _get_content(self, path: str) -> Coroutine[Any, Any, bytes]:
        return self._get_content_timed(self.driver._get_content(path))

    def _put_content(self, path: str, data: bytes) -> Coroutine[Any, Any, None]:
        return self._actions["PutContent"].timed(self.driver._put_content(path, data))

    def _put_content_unsynced(self, path: str, data: bytes, like: str | None) -> Coroutine[Any, Any, None]:
        return self._actions["PutContent"].timed(self.driver._put_content_unsynced(path, data, like))

    def _put_contents(self, items: Sequence[tuple[str, bytes]]) -> Coroutine[Any, Any, None]:
        return self._actions["PutContent"].timed(self.driver._put_contents(items))

    def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> Coroutine[Any, Any, None]:
        return self._actions["PutMany"].timed(self.driver._put_many(items, durable))

    def _create_content(self, path: str, data: bytes) -> Coroutine[Any, Any, bool]:
        return self._actions["CreateContent"].timed(self.driver._create_content(path, data))

    async def _reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        chunks = self.driver._reader(path, offset, length)
        try:
            first = await self._actions["Reader"].timed(anext(chunks, None))
            if first is None:
                return
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    def _sized_reader(
        self, path: str, offset: int, length: int | None
    ) -> Coroutine[Any, Any, tuple[int, AsyncIterator[bytes]]]:
        return self._actions["Reader"].timed(self.driver._sized_reader(path, offset, length))

    def _unfinished_reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        # Untimed: its callers poll it while a writer writes, not a request's wait.
        return self.driver._unfinished_reader(path, offset, length)

    def _writer(self, path: str, append: bool) -> Coroutine[Any, Any, FileWriter]:
        return self._actions["Writer"].timed(self.driver._writer(path, append))

    def _stat(self, path: str) -> Coroutine[Any, Any, FileInfo]:
        return self._stat_timed(self.driver._stat(path))

    def _file_size(self, path: str) -> Coroutine[Any, Any, int | None]:
        return self._stat_timed(self.driver._file_size(path))

    def _list(
        self, path: str, after: str | None, limit: int | None
    ) -> Coroutine[Any, Any, builtins.list[str]]:
        return self._actions["List"].timed(self.driver._list(path, after, limit))

    def _scan(self, path: str, after: str, limit: int) -> Coroutine[Any, Any, builtins.list[str] | None]:
        return self._actions["Scan"].timed(self.driver._scan(path, after, limit))

    def _move(self, source: str, destination: str, size: int | None) -> Coroutine[Any, Any, None]:
        return self._actions["Move"].timed(self.driver._move(source, destination, size))

    def _delete(self, path: str) -> Coroutine[Any, Any, None]:
        return self._actions["Delete"].timed(self.driver._delete(path))

    def _redirect_url(self, path: str) -> Coroutine[Any, Any, str | None]:
        return self._actions["RedirectURL"].timed(self.driver._redirect_url(path))

    def _open_local(self, path: str) -> Coroutine[Any, Any, int | None]:
        return self._actions["OpenLocal"].timed(self.driver._open_local(path))

    def _purge_incomplete(self, path: str, older_than: float) -> Coroutine[Any, Any, int]:
        return self._actions["PurgeIncomplete"].timed(self.driver._purge_incomplete(path, older_than))

    def _list_many(
        self, paths: Sequence[str]
    ) -> Coroutine[Any, Any, builtins.list[builtins.list[str] | None]]:
        return self._actions["ListMany"].timed(self.driver._list_many(paths))

    def _stat_many(self, paths: Sequence[str]) -> Coroutine[Any, Any, builtins.list[FileInfo | None]]:
        return self._actions["StatMany"].timed(self.driver._stat_many(paths))

    def _get_many(self, paths: Sequence[str]) -> Coroutine[Any, Any, builtins.list[bytes | None]]:
        return self._actions["GetMany"].timed(self.driver._get_many(paths))

    def _delete_many(self, paths: Sequence[str]) -> Coroutine[Any, Any, None]:
        return self._actions["DeleteMany"].timed(self.driver._delete_many(paths))

    async def _walk(self, path: str) -> AsyncIterator[FileInfo]:
        walk = self._actions["Walk"]
        started = perf_counter()
        try:
            async for info in self.driver._walk(path):
                yield info
        except Exception as exc:
            walk.failed(exc)
            raise
        finally:
            assert walk.seconds is not None  # a fixed action's
            walk.seconds.observe(perf_counter() - started)

    async def close(self) -> None:
        await self.driver.close()
