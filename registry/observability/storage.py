"""Storage driver calls timed and their failures counted, by action, around any driver.

The action names are Distribution's (``registry_storage_action_seconds``), so its storage
panels work unchanged. A reader is timed to its first chunk and a walk to its end: what a
request waits for before it can answer.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import ClassVar, TypeVar

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

T = TypeVar("T")
STORAGE_ACTIONS = (
    "GetContent", "PutContent", "Reader", "Writer", "Stat", "List", "Move", "Delete", "RedirectURL",
    "PurgeIncomplete", "Walk", "Scan",
)  # fmt: skip


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


class ObservedDriver(StorageDriver):
    """Delegates every call to ``driver`` (paths are checked once, by this wrapper's public
    methods) and records each call's duration and failure."""

    name: ClassVar[str] = "observed"

    def __init__(self, driver: StorageDriver, metrics: Metrics) -> None:
        self.driver = driver
        self.driver_name = driver.name
        self._metrics = metrics
        self.unfinished_reads = driver.unfinished_reads
        self.creates_exclusively = driver.creates_exclusively
        self.listing_carries_stats = driver.listing_carries_stats
        self._seconds = {
            action: metrics.histogram(metrics.storage_seconds, action, driver.name)
            for action in STORAGE_ACTIONS
        }

    async def _timed(self, action: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except Exception as exc:
            self._failed(action, exc)
            raise
        finally:
            seconds = self._seconds.get(action)
            if seconds is None:  # a batch's (ListMany, StatMany, ...): one per batch, shown once used
                seconds = self._seconds[action] = self._metrics.histogram(
                    self._metrics.storage_seconds, action, self.driver_name
                )
            seconds.observe(time.perf_counter() - started)

    def _failed(self, action: str, exc: Exception) -> None:
        metrics = self._metrics
        metrics.add(metrics.storage_errors, action, self.driver_name, error_label(exc))

    async def _get_content(self, path: str) -> bytes:
        return await self._timed("GetContent", self.driver._get_content(path))

    async def _put_content(self, path: str, data: bytes) -> None:
        await self._timed("PutContent", self.driver._put_content(path, data))

    async def _put_contents(self, items: Sequence[tuple[str, bytes]]) -> None:
        await self._timed("PutContent", self.driver._put_contents(items))

    async def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> None:
        await self._timed("PutMany", self.driver._put_many(items, durable))

    async def _create_content(self, path: str, data: bytes) -> bool:
        return await self._timed("CreateContent", self.driver._create_content(path, data))

    async def _reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        chunks = self.driver._reader(path, offset, length)
        try:
            first = await self._timed("Reader", anext(chunks, None))
            if first is None:
                return
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    def _unfinished_reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        # Untimed: its callers poll it while a writer writes, not a request's wait.
        return self.driver._unfinished_reader(path, offset, length)

    async def _writer(self, path: str, append: bool) -> FileWriter:
        return await self._timed("Writer", self.driver._writer(path, append))

    async def _stat(self, path: str) -> FileInfo:
        return await self._timed("Stat", self.driver._stat(path))

    async def _file_size(self, path: str) -> int | None:
        return await self._timed("Stat", self.driver._file_size(path))

    async def _list(self, path: str, after: str | None, limit: int | None) -> builtins.list[str]:
        return await self._timed("List", self.driver._list(path, after, limit))

    async def _scan(self, path: str, after: str, limit: int) -> builtins.list[str] | None:
        return await self._timed("Scan", self.driver._scan(path, after, limit))

    async def _move(self, source: str, destination: str) -> None:
        await self._timed("Move", self.driver._move(source, destination))

    async def _delete(self, path: str) -> None:
        await self._timed("Delete", self.driver._delete(path))

    async def _redirect_url(self, path: str) -> str | None:
        return await self._timed("RedirectURL", self.driver._redirect_url(path))

    async def _purge_incomplete(self, path: str, older_than: float) -> int:
        return await self._timed("PurgeIncomplete", self.driver._purge_incomplete(path, older_than))

    async def _list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        return await self._timed("ListMany", self.driver._list_many(paths))

    async def _stat_many(self, paths: Sequence[str]) -> builtins.list[FileInfo | None]:
        return await self._timed("StatMany", self.driver._stat_many(paths))

    async def _get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        return await self._timed("GetMany", self.driver._get_many(paths))

    async def _delete_many(self, paths: Sequence[str]) -> None:
        await self._timed("DeleteMany", self.driver._delete_many(paths))

    async def _walk(self, path: str) -> AsyncIterator[FileInfo]:
        started = time.perf_counter()
        try:
            async for info in self.driver._walk(path):
                yield info
        except Exception as exc:
            self._failed("Walk", exc)
            raise
        finally:
            self._seconds["Walk"].observe(time.perf_counter() - started)

    async def close(self) -> None:
        await self.driver.close()
