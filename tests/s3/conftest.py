"""The registry on S3 (Ceph RADOS Gateway) scaled out as operators run it: separate ``dockyard
serve`` replicas (two workers each) sharing one bucket and ``http.secret``, behind nginx on the
shipped plain-HTTP site with one upstream ``server`` line per replica (round-robin).

Which replica served each proxied request is written by nginx to ``logs/upstreams.log`` (an
extra access log, ``$upstream_addr``): the shipped site itself is unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.s3.faults import PART
from tests.support.ceph import CephRGW
from tests.support.nginx import HTTP_SITE, Nginx
from tests.support.registry import RunningRegistry, StartRegistry, s3_storage

REPLICAS = 3
SECRET = "the-replicas-share-this-secret"

UPSTREAM_LOG = (
    "    log_format dockyard_upstreams '$request_method $request_uri $status $upstream_addr';\n"
    "    access_log logs/upstreams.log dockyard_upstreams;\n"
)
_LANDING = re.compile(r"(?P<method>\S+) (?P<uri>\S+) (?P<status>\d{3}) (?P<upstream>.+)")


@dataclass(frozen=True)
class Landing:
    """One request nginx proxied, and the replica (or replicas, if retried) that answered it."""

    method: str
    uri: str
    status: int
    upstream: str


def landings(balancer: Nginx) -> list[Landing]:
    path = balancer.workdir / "logs" / "upstreams.log"
    found = []
    for line in path.read_text().splitlines():
        match = _LANDING.fullmatch(line)
        assert match, line
        found.append(Landing(match["method"], match["uri"], int(match["status"]), match["upstream"]))
    return found


@pytest.fixture(scope="module")
def replicas(start_registry: StartRegistry, ceph_rgw: CephRGW) -> Iterator[list[RunningRegistry]]:
    """Separate registry processes on one bucket, stopped when the module ends."""
    config = {"storage": s3_storage(ceph_rgw), "http": {"secret": SECRET}}
    started = [start_registry(config, workers=2) for _ in range(REPLICAS)]
    yield started
    for replica in started:
        replica.stop()


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, replicas: list[RunningRegistry]) -> Iterator[Nginx]:
    nginx = Nginx(
        tmp_path_factory.mktemp("balancer"),
        HTTP_SITE,
        [replica.host for replica in replicas],
        extra_http=UPSTREAM_LOG,
    ).start()
    yield nginx
    nginx.stop()


@pytest.fixture
def balanced(balancer: Nginx) -> Iterator[httpx.Client]:
    """httpx to the balancer: one keep-alive connection, as a pushing client keeps."""
    with httpx.Client(base_url=balancer.url, timeout=120) as http:
        yield http


@pytest.fixture
def new_repository(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Makes repository names unique to this test and run."""
    test_name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    return lambda: f"s3/{test_name}-{os.urandom(4).hex()}"


@pytest.fixture(scope="module")
def own_ceph(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephRGW]:
    """A Ceph of the test module's own, for tests that stop or freeze it (stopping the session's
    would disturb other tests)."""
    rgw = CephRGW(tmp_path_factory.mktemp(f"ceph-{request.module.__name__.rsplit('.', 1)[-1]}")).start()
    yield rgw
    rgw.stop()


@pytest.fixture(scope="module")
def own_registry(start_registry: StartRegistry, own_ceph: CephRGW) -> Iterator[RunningRegistry]:
    running = start_registry({"storage": s3_storage(own_ceph, chunksize=PART)})
    yield running
    running.stop()
