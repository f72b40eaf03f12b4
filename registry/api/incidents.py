"""Storage incidents (full, refusing writes, unreachable): answered per request, logged per incident.

While the storage is full every write fails, thousands a minute; a log line (or a traceback)
for each would flood the log, which often lives on that same full disk. So each condition is
logged once when it starts, as a count every ``REPORT_INTERVAL`` seconds while it lasts, and
once when it ends. The state lives in each worker process (workers share nothing in memory):
with N workers an incident logs up to N start lines and N end lines, one per worker that saw it.

An incident ends with the first request that shows the storage works again: for a full or
write-refusing storage a write that succeeded (POST, PUT, PATCH), for an unreachable one any
request that reached the storage and did not fail on the server's side.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from storage_drivers import StorageError, StorageFull, StorageReadOnly, StorageUnavailable

from ..errors import ErrorCode, RegistryError

log = logging.getLogger("registry")

RETRY_AFTER_SECONDS = "5"
REPORT_INTERVAL = 60.0
"""Seconds between the counts logged while an incident lasts."""
WRITES = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose success shows the storage takes writes again (a DELETE succeeds on a full disk)."""


class Condition(Enum):
    # name = (error answered, what the log calls it)
    FULL = (ErrorCode.STORAGE_FULL, "storage is full")
    READ_ONLY = (ErrorCode.STORAGE_READ_ONLY, "storage refuses writes")
    UNAVAILABLE = (ErrorCode.UNAVAILABLE, "storage is unavailable")

    @property
    def error(self) -> ErrorCode:
        return self.value[0]

    @property
    def description(self) -> str:
        return self.value[1]

    @classmethod
    def of(cls, exc: StorageError) -> Condition | None:
        if isinstance(exc, StorageFull):
            return cls.FULL
        if isinstance(exc, StorageReadOnly):
            return cls.READ_ONLY
        if isinstance(exc, StorageUnavailable):
            return cls.UNAVAILABLE
        return None


@dataclass
class _Incident:
    started: float
    refused: int = 0
    reported: float = 0.0
    refused_when_reported: int = 0


class StorageIncidents:
    """This process's open incidents, by condition."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: dict[Condition, _Incident] = {}

    @property
    def current(self) -> list[Condition]:
        return list(self._open)

    def refuse(self, exc: StorageError) -> RegistryError | None:
        """The answer for a storage error that is a condition (None for any other), counted in
        its incident."""
        condition = Condition.of(exc)
        if condition is None:
            return None
        now = self._clock()
        incident = self._open.get(condition)
        if incident is None:
            incident = self._open[condition] = _Incident(started=now, reported=now)
            log.warning(
                "%s (%s); worker %d answers 503 until it passes", condition.description, exc, os.getpid()
            )
        incident.refused += 1
        if now - incident.reported >= REPORT_INTERVAL:
            log.warning(
                "%s for %.0f s: worker %d refused %d requests (%d since the last count)",
                condition.description,
                now - incident.started,
                os.getpid(),
                incident.refused,
                incident.refused - incident.refused_when_reported,
            )
            incident.reported, incident.refused_when_reported = now, incident.refused
        return RegistryError(condition.error, headers={"Retry-After": RETRY_AFTER_SECONDS})

    def succeeded(self, method: str, reached_storage: bool) -> None:
        """A request answered below 400: end the incidents it shows to be over."""
        if not self._open:
            return
        if method in WRITES:
            self._end(Condition.FULL)
            self._end(Condition.READ_ONLY)
        if reached_storage:
            self._end(Condition.UNAVAILABLE)

    def _end(self, condition: Condition) -> None:
        incident = self._open.pop(condition, None)
        if incident is not None:
            log.warning(
                "%s: over after %.0f s, %d requests refused by worker %d",
                condition.description,
                self._clock() - incident.started,
                incident.refused,
                os.getpid(),
            )
