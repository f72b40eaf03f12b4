"""The filesystem's ``OSError``s as the driver contract's errors, and the thread calls that raise
them."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar

from offload import to_thread

from ..base import InvalidPath, PathNotFound, StorageError, StorageFull, StorageReadOnly

_T = TypeVar("_T")


def translate(path: str, exc: OSError) -> StorageError:
    if exc.errno in {errno.ENOENT, errno.ENOTDIR}:
        return PathNotFound(path)
    if exc.errno in {errno.EISDIR, errno.ENAMETOOLONG}:
        return InvalidPath(path, os.strerror(exc.errno))
    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return StorageFull(path, os.strerror(exc.errno))
    if exc.errno == errno.EROFS:
        return StorageReadOnly(path, os.strerror(exc.errno))
    return StorageError(path, os.strerror(exc.errno or 0) or str(exc))


async def in_thread(path: str, func: Callable[[], _T]) -> _T:
    try:
        return await to_thread(func)
    except OSError as exc:
        raise translate(path, exc) from exc
