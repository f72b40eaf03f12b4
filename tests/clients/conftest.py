"""Fixtures for driving stock clients (docker, podman, buildah, skopeo, oras) against a registry.

The registry the clients talk to is the ``target_registry`` fixture. By default it is the shared
Dockyard server; ``DOCKYARD_CLIENT_TARGETS`` (comma-separated names from ``TARGETS``) runs the
whole suite once per listed deployment, e.g. ``distribution`` to check the tests themselves
against CNCF Distribution, or ``dockyard-s3`` for the registry on S3 (Ceph RADOS Gateway). A new
deployment is one more ``TARGETS`` entry naming the session fixture that starts it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator

import pytest

from tests.support.distribution import DistributionRegistry
from tests.support.served import RegistryEndpoint, Served

# Deployment name -> session fixture that returns a started registry.
TARGETS = {
    "dockyard": "registry_server",
    "dockyard-s3": "s3_registry_server",  # blob GETs redirect to presigned S3 URLs
    "dockyard-s3-noredirect": "s3_registry_server_noredirect",  # the registry streams them
    "distribution": "distribution_server",
}


def selected_targets() -> list[str]:
    names = os.environ.get("DOCKYARD_CLIENT_TARGETS", "dockyard").split(",")
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise pytest.UsageError(f"unknown DOCKYARD_CLIENT_TARGETS {unknown}; known: {sorted(TARGETS)}")
    return names


@pytest.fixture(scope="session", params=selected_targets())
def target_registry(request: pytest.FixtureRequest) -> RegistryEndpoint:
    """The registry the clients push to and pull from."""
    registry: RegistryEndpoint = request.getfixturevalue(TARGETS[request.param])
    return registry


@pytest.fixture(scope="session")
def distribution_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionRegistry]:
    """CNCF Distribution on its own root: the reference the client tests must pass against."""
    workdir = tmp_path_factory.mktemp("distribution")
    registry = DistributionRegistry(workdir, workdir / "data").start()
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def served(target_registry: RegistryEndpoint) -> Iterator[Served]:
    """HTTP checks on what the target registry serves."""
    client = Served(target_registry.url)
    yield client
    client.close()


@pytest.fixture
def new_repository(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Makes repository names unique to this test and run: ``new_repository("base")``."""
    test_name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")

    def make(label: str = "repo") -> str:
        return f"clients/{test_name}/{label}-{os.urandom(4).hex()}"

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the tail of the target registry's log to the report."""
    report: pytest.TestReport = yield
    registry = getattr(item, "funcargs", {}).get("target_registry")
    if report.failed and registry is not None:
        report.sections.append(("registry log (tail)", registry.log()[-6000:]))
    return report
