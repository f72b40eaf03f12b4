"""What a driver's test class tunes, and the fixtures every part of the suite uses."""

from __future__ import annotations

import secrets
from typing import ClassVar

import pytest

from ..base import StorageDriver
from .support import MIB


class ConformanceSettings:
    """Class attributes a driver's test class sets to say what its driver can do."""

    streamed_size: ClassVar[int] = 5 << 30
    """Size of the large streamed write; a driver that keeps objects in memory lowers it."""
    streamed_memory_limit: ClassVar[int] = 512 * MIB
    """How much the process's peak memory may grow while streaming ``streamed_size`` bytes."""
    redirects: ClassVar[bool] = False
    """Whether ``redirect_url`` gives URLs (which must then download the object)."""
    redirect_expiry: ClassVar[float] = 0.0
    """How long the fixture's driver keeps redirect URLs valid, when it gives them."""
    scans: ClassVar[bool] = False
    """Whether ``scan`` lists keys (else it must answer None)."""
    local_files: ClassVar[bool] = False
    """Whether ``open_local`` gives descriptors of files on this machine (else it answers None)."""

    @pytest.fixture
    def driver(self) -> StorageDriver:
        raise NotImplementedError("a driver's test class provides the driver fixture")

    @pytest.fixture
    def root(self) -> str:
        """A directory of this test's own."""
        return f"/conformance-{secrets.token_hex(6)}"
