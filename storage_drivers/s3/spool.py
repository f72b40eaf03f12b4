"""Bytes of an upload gathered toward a part in an unlinked local file, not in memory.

A request body of unannounced length (``Transfer-Encoding: chunked``, as Docker sends its
``PATCH``) cannot be declared to S3 before it ends, so its bytes wait until they make a part
(at least 5 MiB). Held in memory, sixteen such uploads held 80 MiB and more; in a file they
cost the page cache, which the kernel reclaims, and a part is sent from the file in pieces.
All calls block: run them in a worker thread.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import IO

PIECE = 256 << 10
"""Bytes read from the file at a time, kept under the workers' malloc mapping threshold."""


class Spool:
    """The bytes ``[start, end)`` of an unlinked temporary file, appended at the end and taken
    from the front."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        """Opened on the first byte; closed by ``close``, or when the writer is dropped."""
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is None:
            # In TMPDIR, as tempfile finds it; unlinked at once, so a dead worker leaves nothing.
            self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 - kept open until close
        view = memoryview(data)
        while view:
            written = os.pwrite(self._file.fileno(), view, self._end)
            self._end += written
            view = view[written:]

    def pieces(self, length: int) -> Iterator[bytes]:
        """The first ``length`` bytes, a PIECE at a time, left in place."""
        assert length <= len(self)
        if length:
            assert self._file is not None
            yield from _pieces(self._file.fileno(), self._start, self._start + length)

    def read(self, length: int) -> bytes:
        """The first ``length`` bytes, left in place."""
        return b"".join(self.pieces(length))

    def drop(self, length: int) -> None:
        """Forget the first ``length`` bytes; what is left moves to the file's start, so the
        file never holds more than a part and the bytes written since."""
        assert self._file is not None
        assert length <= len(self)
        fd, left, position = self._file.fileno(), len(self) - length, 0
        # Usually less than a batch: what came in the same write after the part's end.
        for piece in _pieces(fd, self._start + length, self._end):
            os.pwrite(fd, piece, position)  # forwards, so never over bytes still to move
            position += len(piece)
        self._start, self._end = 0, left
        os.ftruncate(fd, left)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._start = self._end = 0


def _pieces(fd: int, position: int, end: int) -> Iterator[bytes]:
    while position < end:
        piece = os.pread(fd, min(PIECE, end - position), position)
        if not piece:
            raise OSError(f"the spool file ended at {position} of {end}")
        position += len(piece)
        yield piece
