"""An upload's bytes appended to a hidden file beside the target, published by ``commit``."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable

from offload import to_bulk_thread

from ..base import FileWriter, StorageError
from ..direct_writes import DirectAppender
from .errors import in_thread, translate
from .staging import TEMP_PREFIX, sync_directory

WRITEBACK_STEP = 8 << 20
"""Bytes written before the kernel is asked to start writing them to disk."""


def _writeback_starter() -> Callable[[int, int, int], None]:
    """``start(fd, offset, length)``: begin writing a file range to disk without waiting.

    Done as bytes arrive, the ``fdatasync`` of ``commit`` then only waits for the last few
    megabytes instead of the whole blob (Linux ``sync_file_range``; elsewhere a no-op).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sync_file_range = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: None
    sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    sync_file_range.restype = ctypes.c_int
    write_only = 2  # SYNC_FILE_RANGE_WRITE: start writeback of dirty pages, do not wait

    def start(fd: int, offset: int, length: int) -> None:
        sync_file_range(fd, offset, length, write_only)  # a failure only loses the head start

    return start


_start_writeback = _writeback_starter()


def pending_file(full: str) -> str:
    """Where a writer's bytes wait for ``commit``: a hidden file beside the target."""
    directory, name = os.path.split(full)
    return os.path.join(directory, f"{TEMP_PREFIX}pending-{name}")


class FilesystemWriter(FileWriter):
    def __init__(self, path: str, full_path: str, fd: int, size: int) -> None:
        self._path = path
        self._full_path = full_path
        self._pending_path = pending_file(full_path)
        self._fd: int | None = fd
        self._appender = DirectAppender(fd, self._pending_path)
        self._size = size
        self._written_back = size

    @property
    def size(self) -> int:
        return self._size

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StorageError(self._path, "writer already closed")
        return self._fd

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._require_fd()
        await to_bulk_thread(self._write_here, memoryview(data))

    def blocking_write(self) -> Callable[[memoryview], None]:
        return self._write_here

    def _write_here(self, data: memoryview) -> None:
        """Append ``data`` in the calling thread (never the event loop's)."""
        fd = self._require_fd()
        view = data.cast("B")
        offset, start, end = self._size, self._written_back, self._size + len(view)
        try:
            self._appender.append(view, offset)
            if end - start >= WRITEBACK_STEP:
                _start_writeback(fd, start, end - start)
        except OSError as exc:
            raise translate(self._path, exc) from exc
        self._size = end
        if end - start >= WRITEBACK_STEP:
            self._written_back = end

    async def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self._appender.close()
            os.close(fd)

    async def commit(self) -> None:
        fd = self._require_fd()

        def publish() -> None:
            os.fdatasync(fd)
            os.replace(self._pending_path, self._full_path)
            # The rename too, as every other write's: committed data survives a crash as such.
            sync_directory(os.path.dirname(self._full_path))

        try:
            await in_thread(self._path, publish)
        finally:
            await self.close()

    async def cancel(self) -> None:
        await self.close()
        with contextlib.suppress(OSError):
            os.unlink(self._pending_path)
