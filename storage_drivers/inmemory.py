"""In-memory driver for tests: one process, nothing persisted.

It lives in one process's memory, so a server running several workers must not use it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from .base import FileInfo, FileWriter, InvalidOffset, InvalidPath, PathNotFound, StorageDriver
from .config import DriverConfigError, Parameters
from .listings import page

CHUNK = 1 << 20


class _Object:
    __slots__ = ("data", "modified")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.modified = time.time()


class _InMemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, data: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._data = data
        self._open = True

    @property
    def size(self) -> int:
        return len(self._data)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._data += data

    async def close(self) -> None:
        if self._open:
            self._open = False
            self._driver._pending[self._path] = self._data

    async def commit(self) -> None:
        self._open = False
        self._driver._pending.pop(self._path, None)
        self._driver._store(self._path, bytes(self._data))

    async def cancel(self) -> None:
        self._open = False
        self._driver._pending.pop(self._path, None)


class InMemoryDriver(StorageDriver):
    name = "inmemory"
    listing_carries_stats = True

    def __init__(self) -> None:
        self._objects: dict[str, _Object] = {}
        self._pending: dict[str, bytearray] = {}

    @classmethod
    def from_parameters(cls, parameters: Parameters) -> InMemoryDriver:
        if parameters:
            raise DriverConfigError(["storage.inmemory takes no parameters"])
        return cls()

    def _store(self, path: str, data: bytes) -> None:
        if self._is_dir(path):
            raise InvalidPath(path, "a directory is stored there")
        self._objects[path] = _Object(data)

    def _is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(key.startswith(prefix) for key in self._objects)

    def _get(self, path: str) -> _Object:
        try:
            return self._objects[path]
        except KeyError:
            raise PathNotFound(path) from None

    async def _get_content(self, path: str) -> bytes:
        return self._get(path).data

    async def _put_content(self, path: str, data: bytes) -> None:
        self._store(path, bytes(data))

    creates_exclusively = True  # one process, and no await between the look and the store
    deletes_exactly = True

    async def _create_content(self, path: str, data: bytes) -> bool:
        if path in self._objects:
            return False
        self._store(path, bytes(data))
        return True

    async def _reader(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        data = self._get(path).data
        if offset > len(data):
            raise InvalidOffset(path, f"offset {offset} beyond size {len(data)}")
        end = len(data) if length is None else min(len(data), offset + length)
        for start in range(offset, end, CHUNK):
            yield data[start : min(start + CHUNK, end)]

    async def _writer(self, path: str, append: bool) -> FileWriter:
        if self._is_dir(path):
            raise InvalidPath(path, "a directory is stored there")
        data = self._pending.get(path, bytearray()) if append else bytearray()
        return _InMemoryWriter(self, path, data)

    async def _stat(self, path: str) -> FileInfo:
        if path in self._objects:
            obj = self._objects[path]
            return FileInfo(path, len(obj.data), obj.modified)
        prefix = path.rstrip("/") + "/"
        modified = [o.modified for key, o in self._objects.items() if key.startswith(prefix)]
        if not modified:
            raise PathNotFound(path)
        return FileInfo(path, 0, max(modified), is_dir=True)

    async def _list(self, path: str, after: str | None, limit: int | None) -> list[str]:
        prefix = "/" if path == "/" else path + "/"
        children = {key[len(prefix) :].split("/", 1)[0] for key in self._objects if key.startswith(prefix)}
        if not children:
            raise PathNotFound(path)
        return [prefix + name for name in page(sorted(children), after, limit)]

    async def _scan(self, path: str, after: str, limit: int) -> list[str] | None:
        prefix = "/" if path == "/" else path + "/"
        start = prefix + after
        keys = sorted(key for key in self._objects if key.startswith(prefix) and key > start)
        return keys[:limit]

    async def _move(self, source: str, destination: str, size: int | None) -> None:
        obj = self._get(source)
        self._store(destination, obj.data)
        del self._objects[source]

    async def _delete(self, path: str) -> None:
        prefix = path + "/"
        doomed = [key for key in self._objects if key == path or key.startswith(prefix)]
        if not doomed:
            raise PathNotFound(path)
        for key in doomed:
            del self._objects[key]
        for key in [key for key in self._pending if key.startswith(prefix)]:
            del self._pending[key]  # writers' state dies with their directory, as on disk

    async def _walk(self, path: str) -> AsyncIterator[FileInfo]:
        prefix = "/" if path == "/" else path + "/"
        found = [
            FileInfo(key, len(obj.data), obj.modified)
            for key, obj in self._objects.items()
            if key.startswith(prefix)
        ]
        if not found and path != "/":
            raise PathNotFound(path)
        for info in found:
            yield info
