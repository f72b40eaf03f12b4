from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.registry import (
    RunningRegistry,
    StartRegistry,
    configure,
    default_config,
    driver_section,
    filesystem_storage,
    s3_storage,
)

if TYPE_CHECKING:  # imported by pytest as a plugin, which rewrites its asserts first
    from tests.support.ceph import CephRGW

# Servers and clients more than one suite uses, each started once a session, when first needed.
pytest_plugins = [
    "tests.support.ceph",
    "tests.support.containers",
    "tests.support.dockerd",
    "tests.support.launcher",
]

STORAGE_BACKENDS = {
    "filesystem": "a folder of the registry's own (the default)",
    "s3": "a fresh bucket on the session's Ceph RADOS Gateway; blob GETs redirect to presigned URLs",
    "s3-noredirect": "as s3, with storage.redirect.disable: the registry streams blob GETs itself",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--registry-storage",
        choices=sorted(STORAGE_BACKENDS),
        default="filesystem",
        help="where registries the tests start store their content unless a test names its own: "
        + "; ".join(f"{name}: {what}" for name, what in STORAGE_BACKENDS.items()),
    )
    parser.addoption(
        "--blob-descriptor-cache",
        action="store_true",
        help="registries the tests start keep a blob descriptor cache "
        "(storage.cache.blobdescriptor: inmemory) unless a test's config says otherwise",
    )


@pytest.fixture(scope="session")
def start_registry(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StartRegistry]:
    """Start ``dockyard serve`` with the default test config merged with ``config``.

    Storage is, in this order: the driver ``config`` names in its ``storage`` section (e.g.
    ``{"storage": other.storage}`` serves another registry's content), a filesystem ``root``
    (e.g. one written by another registry), else a new one of the ``--registry-storage`` kind.
    ``env`` adds environment variables to the server's. Every registry started is stopped at the
    end of the session.
    """
    backend = request.config.getoption("registry_storage")
    descriptor_cache = request.config.getoption("blob_descriptor_cache")
    rgw: CephRGW | None = request.getfixturevalue("ceph_rgw") if backend != "filesystem" else None
    started: list[RunningRegistry] = []

    def start(
        config: dict[str, Any] | None = None,
        workers: int = 2,
        root: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> RunningRegistry:
        workdir = tmp_path_factory.mktemp("registry")
        config = config or {}
        if root is not None:
            storage = filesystem_storage(root)
        elif driver_section(config) or rgw is None:
            storage = filesystem_storage(workdir / "data")  # replaced by the config's own driver
        else:
            storage = {"s3": rgw.driver_parameters(rgw.create_bucket())}
        base = default_config(storage=storage)
        if backend == "s3-noredirect":
            base["storage"]["redirect"] = {"disable": True}
        if descriptor_cache:
            base["storage"]["cache"] = {"blobdescriptor": "inmemory"}
        registry = RunningRegistry(workdir, configure(base, config), workers, env=env)
        started.append(registry)
        return registry.start()

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture(scope="session")
def registry_server(start_registry: StartRegistry) -> RunningRegistry:
    """One shared registry (two workers, deletes enabled; storage as ``--registry-storage``)."""
    return start_registry()


@pytest.fixture(scope="session")
def s3_registry_server(start_registry: StartRegistry, ceph_rgw: CephRGW) -> RunningRegistry:
    """One shared registry on a bucket of its own; blob GETs redirect to presigned URLs."""
    return start_registry({"storage": s3_storage(ceph_rgw)})


@pytest.fixture(scope="session")
def s3_registry_server_noredirect(start_registry: StartRegistry, ceph_rgw: CephRGW) -> RunningRegistry:
    """One shared registry on a bucket of its own, streaming blob GETs itself."""
    return start_registry({"storage": s3_storage(ceph_rgw, redirect=False)})
