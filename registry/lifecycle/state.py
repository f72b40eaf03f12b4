"""The maintenance state record and the storage's clock, shared by every process on one storage.

One small object (``paths.gc_state``) says which run holds the maintenance lease, whether it is
active, and until when (in the storage's clock). Garbage collection and repository deletion hold
it; a manifest push reads it twice (see ``guard``). Times are only ever compared with times the
same storage gave: a process's own clock is used for elapsed time, never for a timestamp.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from storage_drivers import PathNotFound, StorageDriver

from ..references import RunId
from ..storage import paths


@dataclass(frozen=True, slots=True)
class GCState:
    run: RunId | None
    active: bool
    expires: float
    """When the holder's lease ends, in the storage's clock (seconds since the epoch)."""
    holder: str = ""
    operation: str = ""

    def encode(self) -> bytes:
        document = {
            "run": self.run,
            "active": self.active,
            "expires": self.expires,
            "holder": self.holder,
            "operation": self.operation,
        }
        return json.dumps(document, sort_keys=True).encode()


IDLE = GCState(None, False, 0.0)


def decode(content: bytes) -> GCState:
    """A record nobody can read is taken as held for ever: pushes then take the careful path."""
    try:
        document = json.loads(content)
        run = RunId.parse(document["run"]) if document.get("run") is not None else None
        return GCState(
            run,
            bool(document["active"]),
            float(document["expires"]),
            str(document.get("holder", "")),
            str(document.get("operation", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return GCState(None, True, math.inf)


async def read_state(driver: StorageDriver) -> GCState:
    try:
        return decode(await driver.get_content(paths.gc_state()))
    except PathNotFound:
        return IDLE


async def storage_now(driver: StorageDriver, run: RunId) -> float:
    """The storage's current time, read with a probe named after ``run``."""
    return await storage_time(driver, paths.gc_clock(run))


async def storage_time(driver: StorageDriver, probe: str) -> float:
    """The storage's current time: the modification time it gives an object written now at
    ``probe`` (a path of its own), as a listing reports it. The inventory's times come from
    listings too, and S3 gives a stat only whole seconds (``Last-Modified``) where its listings
    carry milliseconds: a stat-ed probe could make content written earlier in the same second
    look younger than the run."""
    await driver.put_content(probe, b"")
    try:
        async for info in driver.walk(probe.rpartition("/")[0]):
            if info.path == probe:
                return info.modified
        return (await driver.stat(probe)).modified  # a listing that lags behind the write
    finally:
        await driver.delete_many([probe])  # its directory too, on a filesystem, when left empty
