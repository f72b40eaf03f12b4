"""The conformance suite (storage_drivers.testsuite) against every driver the registry ships."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from storage_drivers import InvalidPath, StorageDriver
from storage_drivers.base import check_path
from storage_drivers.filesystem import FilesystemDriver
from storage_drivers.inmemory import InMemoryDriver
from storage_drivers.s3 import S3Driver, parse_settings
from storage_drivers.testsuite import INVALID_PATHS, MIB, DriverConformance
from tests.support.ceph import CephRGW


class TestInMemoryDriver(DriverConformance):
    scans: ClassVar[bool] = True
    streamed_size: ClassVar[int] = 256 * MIB
    """It holds every object in memory: a smaller stream still crosses all part boundaries."""
    streamed_memory_limit: ClassVar[int] = 2 << 30

    @pytest.fixture
    def driver(self) -> StorageDriver:
        return InMemoryDriver()


class TestFilesystemDriver(DriverConformance):
    local_files: ClassVar[bool] = True

    @pytest.fixture
    def driver(self, tmp_path: Path) -> StorageDriver:
        return FilesystemDriver(str(tmp_path / "storage"))


@pytest.mark.s3
class TestS3Driver(DriverConformance):
    scans: ClassVar[bool] = True
    redirects: ClassVar[bool] = True
    redirect_expiry: ClassVar[float] = 3.0

    @pytest.fixture
    async def driver(self, ceph_rgw: CephRGW, s3_bucket: str) -> AsyncIterator[StorageDriver]:
        # Small parts and a low copy threshold so that modest objects cross every boundary.
        parameters = ceph_rgw.driver_parameters(
            s3_bucket,
            rootdirectory="/registry-root",
            chunksize=5 * MIB,
            multipartcopythresholdsize=8 * MIB,
            multipartcopychunksize=5 * MIB,
            multipartcopymaxconcurrency=8,
        )
        driver = S3Driver(parse_settings(parameters), redirect_expiry=self.redirect_expiry)
        yield driver
        await driver.close()


@pytest.mark.parametrize("path", ["/a", "/a/b-c_d.e", "/...", "/a/.b", "/a/b..", "/a/..b/c", "/.a/..."])
def test_paths_with_dots_that_are_not_dot_components_are_valid(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize("path", INVALID_PATHS)
def test_invalid_paths_are_refused_before_any_driver(path: str) -> None:
    with pytest.raises(InvalidPath):
        check_path(path)
