"""The registry behind the shipped nginx sites (TLS and plain HTTP), and clients that reach it.

One registry serves both proxies. The TLS site gets a certificate from a CA made for the session;
clients trust that CA the way operators set it up: httpx and curl with the CA file, skopeo and
podman with ``--cert-dir``, docker through ``/etc/docker/certs.d/<host:port>/ca.crt`` (the session's
dockerd has an /etc/docker of its own, and a name outside 127.0.0.0/8 for ::1, see ``dockerd``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.dockerd import PRIVATE_HOSTNAME
from tests.support.nginx import HTTP_SITE, TLS_SITE, Nginx
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.tls import ServerCertificates, make_certificates

REGISTRY_NAME = PRIVATE_HOSTNAME
"""The name docker uses for the TLS proxy: it resolves to ::1 inside the test's dockerd only."""

pytestmark = pytest.mark.nginx


@pytest.fixture(scope="session")
def proxied_registry(start_registry: StartRegistry) -> RunningRegistry:
    """The registry both proxies forward to (filesystem storage, two workers)."""
    return start_registry()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificates:
    return make_certificates(tmp_path_factory.mktemp("certs"), [REGISTRY_NAME])


@pytest.fixture(scope="session")
def start_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Nginx]]:
    """Start nginx on a shipped site: ``start_nginx(site, upstream, certificates=None, ...)``;
    ``storage_root``: the registry's filesystem root, for blobs nginx serves itself."""
    started: list[Nginx] = []

    def start(
        site: Path,
        upstream: str,
        certificates: ServerCertificates | None = None,
        extra_http: str = "",
        port: int | None = None,
        storage_root: Path | None = None,
    ) -> Nginx:
        nginx = Nginx(
            tmp_path_factory.mktemp("nginx"),
            site,
            upstream,
            certificates,
            extra_http,
            port,
            storage_root=storage_root,
        )
        started.append(nginx)
        return nginx.start()

    yield start
    for nginx in started:
        nginx.stop()


@pytest.fixture(scope="session")
def tls_proxy(
    start_nginx: Callable[..., Nginx], proxied_registry: RunningRegistry, certificates: ServerCertificates
) -> Nginx:
    return start_nginx(TLS_SITE, proxied_registry.host, certificates)


@pytest.fixture(scope="session")
def http_proxy(start_nginx: Callable[..., Nginx], proxied_registry: RunningRegistry) -> Nginx:
    return start_nginx(HTTP_SITE, proxied_registry.host)


@pytest.fixture(scope="session", params=["tls", "http"])
def proxy(request: pytest.FixtureRequest) -> Nginx:
    """Each shipped site in turn, in front of ``proxied_registry``."""
    nginx: Nginx = request.getfixturevalue(f"{request.param}_proxy")
    return nginx


def trusting(certificates: ServerCertificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificates.ca_cert))


@pytest.fixture
def client(proxy: Nginx, certificates: ServerCertificates) -> Iterator[httpx.Client]:
    """httpx to the proxy, trusting the test CA (and nothing else) for the TLS site."""
    verify: ssl.SSLContext | bool = trusting(certificates) if proxy.tls else True
    with httpx.Client(base_url=proxy.url, verify=verify, timeout=120) as http:
        yield http


@pytest.fixture
def repository(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test and run."""
    test_name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")[:50]
    return f"deploy/{test_name}-{os.urandom(4).hex()}"
