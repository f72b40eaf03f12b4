"""The filesystem driver with gates: a test holds chosen operations of one process (a push, a
collection run) at a point of the protocol, and learns when another got past one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage_drivers import FileInfo, StorageDriver
from storage_drivers.filesystem import FilesystemDriver


@dataclass
class Gate:
    """Holds the operations on paths it matches until opened; ``reached`` is set when the first
    one arrives (held), or, for a gate made open, when one has been done."""

    matches: Callable[[str], bool]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def open(self) -> None:
        self.opened.set()


class GatedDriver(FilesystemDriver):
    """Writes (``put``: single, in ordered batches, in unordered batches), exclusive creates
    (``create``), listings (``walk``), stats (``stat``) and batched reads (``get``) of matching
    paths pass gates."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._gates: dict[str, list[Gate]] = {"put": [], "create": [], "walk": [], "stat": [], "get": []}

    def gate(self, operation: str, matches: Callable[[str], bool], closed: bool = True) -> Gate:
        gate = Gate(matches)
        if not closed:
            gate.open()
        self._gates[operation].append(gate)
        return gate

    async def _before(self, operation: str, path: str) -> None:
        for gate in self._gates[operation]:
            if gate.matches(path) and not gate.opened.is_set():
                gate.reached.set()
                await gate.opened.wait()

    def _after(self, operation: str, path: str) -> None:
        for gate in self._gates[operation]:
            if gate.matches(path) and gate.opened.is_set():
                gate.reached.set()

    async def _put_content(self, path: str, data: bytes) -> None:
        await self._before("put", path)
        await super()._put_content(path, data)
        self._after("put", path)

    async def _create_content(self, path: str, data: bytes) -> bool:
        await self._before("create", path)
        try:
            return await super()._create_content(path, data)
        finally:
            self._after("create", path)

    async def _put_contents(self, items: Sequence[tuple[str, bytes]]) -> None:
        for path, _ in items:
            await self._before("put", path)
        await super()._put_contents(items)
        for path, _ in items:
            self._after("put", path)

    async def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> None:
        for path, _ in items:
            await self._before("put", path)
        await super()._put_many(items, durable)
        for path, _ in items:
            self._after("put", path)

    async def _stat(self, path: str) -> FileInfo:
        await self._before("stat", path)
        try:
            return await super()._stat(path)
        finally:
            self._after("stat", path)

    async def _get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        for path in paths:
            await self._before("get", path)
        try:
            return await super()._get_many(paths)
        finally:
            for path in paths:
                self._after("get", path)

    async def _walk(self, path: str) -> AsyncIterator[FileInfo]:
        await self._before("walk", path)
        async for info in super()._walk(path):
            yield info
        self._after("walk", path)


def held(driver: StorageDriver, method: str, matches: Callable[[str], bool], *, after: bool = False) -> Gate:
    """Hold calls of any driver's ``method`` (one taking a path first) on matching paths until the
    gate opens: before the call (a write held up on its way to storage), or with ``after`` once
    it returned (its process paused between that call and what it does next)."""
    gate = Gate(matches)
    call = getattr(driver, method)

    async def holding(path: str, *args: Any) -> Any:
        if not after and matches(path) and not gate.opened.is_set():
            gate.reached.set()
            await gate.opened.wait()
        result = await call(path, *args)
        if after and matches(path) and not gate.opened.is_set():
            gate.reached.set()
            await gate.opened.wait()
        return result

    setattr(driver, method, holding)
    return gate


async def first(*events: asyncio.Event | asyncio.Task[Any]) -> None:
    """Wait until one of ``events`` is set (or one of the tasks is done)."""
    waiters = [asyncio.ensure_future(e.wait()) if isinstance(e, asyncio.Event) else e for e in events]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter, event in zip(waiters, events, strict=True):
        if waiter is not event:
            waiter.cancel()
