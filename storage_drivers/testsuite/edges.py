"""The suite's errors, local files and redirects."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from ..base import InvalidPath, PathNotFound, StorageDriver
from .settings import ConformanceSettings
from .support import INVALID_PATHS, MIB, pattern, read_all


class Edges(ConformanceSettings):
    # -- errors ----------------------------------------------------------------------

    async def test_missing_paths(self, driver: StorageDriver, root: str) -> None:
        missing = f"{root}/missing/object"
        await driver.put_content(f"{root}/present", b"x")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get_content": lambda: driver.get_content(missing),
            "reader": lambda: read_all(driver, missing),
            "ranged reader": lambda: read_all(driver, missing, 1, 1),
            "stat": lambda: driver.stat(missing),
            "list": lambda: driver.list(missing),
            "list page": lambda: driver.list(missing, after="a", limit=5),
            "move": lambda: driver.move(missing, f"{root}/elsewhere"),
            "move of a known size": lambda: driver.move(missing, f"{root}/elsewhere", size=1),
            "delete": lambda: driver.delete(missing),
            "walk": lambda: _drain(driver.walk(missing)),
        }
        assert await _misbehaving(calls, PathNotFound) == {}
        with pytest.raises(PathNotFound):
            await driver.stat(f"{root}/elsewhere")

    @pytest.mark.parametrize("bad", INVALID_PATHS)
    async def test_invalid_paths(self, driver: StorageDriver, root: str, bad: str) -> None:
        good = f"{root}/good"
        await driver.put_content(good, b"x")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get_content": lambda: driver.get_content(bad),
            "put_content": lambda: driver.put_content(bad, b"x"),
            "reader": lambda: read_all(driver, bad),
            "writer": lambda: driver.writer(bad),
            "writer(append)": lambda: driver.writer(bad, append=True),
            "move from": lambda: driver.move(bad, f"{root}/elsewhere"),
            "move to": lambda: driver.move(good, bad),
            "delete": lambda: driver.delete(bad),
            "redirect_url": lambda: driver.redirect_url(bad),
            "open_local": lambda: driver.open_local(bad),
            "stat": lambda: driver.stat(bad),
            "list": lambda: driver.list(bad),
            "list page": lambda: driver.list(bad, after="a", limit=5),
            "walk": lambda: _drain(driver.walk(bad)),
            "purge_incomplete": lambda: driver.purge_incomplete(bad, 0),
        }
        assert await _misbehaving(calls, InvalidPath) == {}
        assert await driver.get_content(good) == b"x"

    # -- local files -----------------------------------------------------------------

    async def test_open_local(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/blob"
        data = pattern(MIB + 3, 5)
        await driver.put_content(path, data)
        fd = await driver.open_local(path)
        if not self.local_files:
            assert fd is None
            return
        assert fd is not None
        try:
            assert os.pread(fd, len(data) + 1, 0) == data
            with pytest.raises(OSError, match="Bad file descriptor"):  # read-only
                os.pwrite(fd, b"x", 0)
        finally:
            os.close(fd)
        with pytest.raises(PathNotFound):
            await driver.open_local(f"{root}/missing")

    # -- redirects -------------------------------------------------------------------

    async def test_redirect_url(self, driver: StorageDriver, root: str) -> None:
        path = f"{root}/blob"
        data = pattern(2 * MIB + 3, 4)
        await driver.put_content(path, data)
        url = await driver.redirect_url(path)
        if not self.redirects:
            assert url is None
            return
        import httpx  # noqa: PLC0415 - only drivers that redirect need it

        assert url is not None
        issued = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(url)
            assert response.status_code == 200
            assert response.content == data
            ranged = await client.get(url, headers={"Range": "bytes=10-19"})
            assert ranged.content == data[10:20]
            await anyio.sleep(max(0.0, issued + self.redirect_expiry + 1.5 - time.monotonic()))
            expired = await client.get(url)
            assert expired.status_code == 403


async def _misbehaving(
    calls: dict[str, Callable[[], Awaitable[Any]]], expected: type[Exception]
) -> dict[str, str]:
    """What each call that did not raise ``expected`` did instead."""
    wrong: dict[str, str] = {}
    for name, call in calls.items():
        try:
            await call()
        except expected:
            continue
        except Exception as exc:  # reported as the test failure
            wrong[name] = f"raised {exc!r}"
        else:
            wrong[name] = "returned"
    return wrong


async def _drain(items: AsyncIterator[Any]) -> None:
    async for _ in items:
        pass
