"""When each tag was pushed and last pulled, shared by every worker and replica, for retention
policies and the web interface.

A time is the storage's modification time of an object, as a listing reports it: the same clock
garbage collection reads, so retention never compares one machine's clock with another's. When a
tag was pushed is its current link's time: every push rewrites that link (Distribution's too), so
a push writes nothing more. Earlier versions also wrote a ``pushed`` record per tag, which is
still read (the later of the two times counts). Pulls are recorded beside the tag and never
write on the request's path: each worker notes the tags pulled (by tag, ``GET`` or ``HEAD``) in
a set and writes each one's ``pulled`` record at most once per flush interval, in the background.
A worker that dies loses at most one interval of pull times: they are best effort. A tag deleted
through the registry takes its records with it; records of a tag that is gone otherwise (deleted
by Distribution, a crash between the two deletes) are ignored by readers, who start from the
tags that exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage_drivers import PathNotFound, StorageDriver, StorageError

from ..background import one_round, running_beside
from ..errors import RegistryError
from ..references import RepositoryName, Tag
from ..storage import paths

if TYPE_CHECKING:
    from ..observability.events import Event

CONCURRENCY = 16
"""Record writes in flight at once during a flush."""

log = logging.getLogger("registry")


@dataclass(frozen=True, slots=True)
class TagTimes:
    """A tag's records, in seconds since the epoch by the storage's clock; None: no record."""

    pushed: float | None = None
    pulled: float | None = None


async def read_tag_times(driver: StorageDriver, name: RepositoryName) -> dict[Tag, TagTimes]:
    """Every tag of ``name`` that has a record, from one walk of the records directory. A tag
    listed here may be gone: callers join with the tags they listed."""
    top = paths.tag_records(name)
    pushed: dict[Tag, float] = {}
    pulled: dict[Tag, float] = {}
    try:
        async for info in driver.walk(top):
            tag_text, _, kind = info.path[len(top) + 1 :].partition("/")
            try:
                tag = Tag.parse(tag_text)
            except RegistryError:
                continue  # not a record the registry writes
            if kind == paths.TAG_PUSHED:
                pushed[tag] = info.modified
            elif kind == paths.TAG_PULLED:
                pulled[tag] = info.modified
    except PathNotFound:
        return {}
    return {tag: TagTimes(pushed.get(tag), pulled.get(tag)) for tag in pushed.keys() | pulled.keys()}


async def tag_times(driver: StorageDriver, name: RepositoryName, tag: Tag) -> TagTimes:
    """One tag's records (two looks, for a page of tags rather than a whole repository)."""

    async def modified(path: str) -> float | None:
        try:
            return (await driver.stat(path)).modified
        except PathNotFound:
            return None

    pushed, pulled = await asyncio.gather(
        modified(paths.tag_pushed(name, tag)), modified(paths.tag_pulled(name, tag))
    )
    return TagTimes(pushed, pulled)


async def forget_tag(driver: StorageDriver, name: RepositoryName, tag: Tag) -> None:
    """After a tag was deleted: its records."""
    with contextlib.suppress(PathNotFound):
        await driver.delete(paths.tag_record_dir(name, tag))


class PullRecorder:
    """One per worker: listens to the event stream for pulls by tag and writes their records
    every ``interval`` seconds (``running``), one write per tag pulled in that interval."""

    def __init__(self, driver: StorageDriver, interval: float) -> None:
        self._driver = driver
        self._interval = interval
        self._pulled: set[tuple[str, str]] = set()
        """(repository, reference) as requested: parsed at the flush, off the request's path."""

    async def listen(self, event: Event) -> None:
        if event.action == "pull":
            self._pulled.add((event.repository, event.reference))

    async def flush(self) -> None:
        """Write the records of the tags pulled since the last flush; a record that cannot be
        written is dropped (best effort), never retried into an unbounded backlog."""
        noted, self._pulled = self._pulled, set()
        pulled = []
        for repository, reference in sorted(noted):
            try:
                pulled.append((RepositoryName.parse(repository), Tag.parse(reference)))
            except RegistryError:
                continue  # pulled by digest: no tag to record
        gate = asyncio.Semaphore(CONCURRENCY)

        async def record(name: RepositoryName, tag: Tag) -> None:
            async with gate:
                try:
                    # A tag deleted since its pull gets no record (it would outlive the tag).
                    await self._driver.stat(paths.tag_current_link(name, tag))
                    await self._driver.put_content(paths.tag_pulled(name, tag), b"{}")
                except PathNotFound:
                    return
                except StorageError as exc:
                    log.warning("could not record the pull time of %s:%s: %s", name, tag, exc)

        await asyncio.gather(*(record(name, tag) for name, tag in pulled))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Flush every interval while the worker serves, and once more when it stops."""

        async def forever() -> None:
            while True:
                await asyncio.sleep(self._interval)
                with one_round(log, "recording pull times"):
                    await self.flush()

        try:
            async with running_beside(forever()):
                yield
        finally:
            with contextlib.suppress(Exception):  # stopping: a storage failure loses pull times only
                await self.flush()
