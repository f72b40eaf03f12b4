"""The storage driver conformance suite: one set of tests every driver must pass.

A driver's test module subclasses ``DriverConformance`` and provides a ``driver``
fixture (pytest with pytest-asyncio; in its strict mode, declare the fixture with
``pytest_asyncio.fixture``)::

    class TestMyDriver(DriverConformance):
        @pytest.fixture
        async def driver(self) -> AsyncIterator[StorageDriver]:
            driver = MyDriver(...)
            yield driver
            await driver.close()

Every test works below its own fresh directory, so one store can serve them all.
Class attributes tune what a driver can do (see ``DriverConformance``). Tests that
stream gigabytes are marked ``slow``.
"""

from __future__ import annotations

from .edges import Edges
from .reading import Reading
from .support import (
    INVALID_PATHS,
    MIB,
    pattern,
    peak_rss,
    read_all,
    read_unfinished,
    reopened,
    streamed_chunks,
    write_object,
)
from .writing import Writing


class DriverConformance(Writing, Reading, Edges):
    """Subclass as ``Test<Driver>`` and provide the ``driver`` fixture; class attributes
    (``ConformanceSettings``) say what the driver can do."""


__all__ = [
    "INVALID_PATHS",
    "MIB",
    "DriverConformance",
    "pattern",
    "peak_rss",
    "read_all",
    "read_unfinished",
    "reopened",
    "streamed_chunks",
    "write_object",
]
