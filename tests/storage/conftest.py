"""The storage services over the in-memory driver, in this process: fast checks of their contracts."""

from __future__ import annotations

import pytest

from registry.lifecycle.guard import PushGuard
from registry.storage import Storage

from .recording import RecordingDriver


@pytest.fixture
def driver() -> RecordingDriver:
    return RecordingDriver()


@pytest.fixture
def storage(driver: RecordingDriver) -> Storage:
    return Storage(driver, PushGuard(driver))
