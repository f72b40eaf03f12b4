"""The web interface and ``docker search`` through each shipped nginx site: nginx routes ``/ui/``
and ``/v1/search`` to the registry, pull lines name the host clients used, and the session cookie
is Secure when the client spoke TLS."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.auth.helpers import write_htpasswd
from tests.support.dockerd import Dockerd
from tests.support.images import random_image
from tests.support.nginx import TLS_SITE, Nginx
from tests.support.pushing import push_content
from tests.support.registry import StartRegistry
from tests.support.tls import ServerCertificates
from tests.support.waiting import until

from .conftest import REGISTRY_NAME, trusting

SEARCH_WAIT = 60.0
"""Bound on a new repository appearing in search on a loaded machine (not a timing assertion)."""

PASSWORD = "search-secret-1"

pytestmark = [pytest.mark.nginx]


def test_pages_through_the_proxy(proxy: Nginx, client: httpx.Client, repository: str) -> None:
    push_content(client, repository, "v1", random_image(1, 2048))
    page = client.get(f"/ui/r/{repository}")
    assert page.status_code == 200
    assert f"docker pull {proxy.host}/{repository}:v1" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert client.get("/ui/static/style.css").status_code == 200
    browser = client.get("/", headers={"Accept": "text/html"})
    assert (browser.status_code, browser.headers["location"]) == (302, "/ui/")
    assert client.get("/").json() == {}
    confirmation = client.get(f"/ui/r/{repository}/-/delete/v1")  # a form: it sets the session
    cookie = confirmation.headers["set-cookie"].lower()
    assert ("; secure" in cookie) is proxy.tls
    found = until_found(
        lambda: [r["name"] for r in client.get("/v1/search", params={"q": repository}).json()["results"]]
    )
    assert found == [repository]


def until_found(search: Callable[[], list[str]]) -> list[str]:
    """What ``search`` finds once it finds anything: each worker's list of names is renewed a few
    seconds after a push (README, Browsing), not at once."""
    return until(search, timeout=SEARCH_WAIT, interval=0.5, what="for the search to find the repository")


@pytest.mark.clients
def test_docker_search_through_the_proxy(
    proxy: Nginx,
    client: httpx.Client,
    dockerd: Dockerd,
    certificates: ServerCertificates,
    repository: str,
) -> None:
    push_content(client, repository, "v1", random_image(1, 2048))
    # Over TLS docker gets a name outside 127.0.0.0/8, the only way it checks certificates.
    host = f"{REGISTRY_NAME}:{proxy.port}" if proxy.tls else proxy.host
    if proxy.tls:
        dockerd.trust(host, certificates.ca_cert)

    def search() -> list[str]:
        lines = dockerd.docker("search", f"{host}/{repository}").stdout.splitlines()
        return [line.split()[0] for line in lines[1:]]

    found = until_found(search)
    assert found == [repository]
    if proxy.tls:
        searches = [line for line in proxy.access_log() if "/v1/search" in line and line.startswith("::1 ")]
        assert searches, "docker searched elsewhere than through the TLS site"
        assert all(" TLSv1.2 " in line or " TLSv1.3 " in line for line in searches), searches


@pytest.fixture(scope="session")
def htpasswd_tls_proxy(
    start_registry: StartRegistry,
    start_nginx: Callable[..., Nginx],
    certificates: ServerCertificates,
    tmp_path_factory: pytest.TempPathFactory,
) -> Nginx:
    """nginx with TLS in front of a registry where alice signs in with a password."""
    htpasswd = write_htpasswd(tmp_path_factory.mktemp("search-htpasswd") / "htpasswd", {"alice": PASSWORD})
    registry = start_registry({"auth": {"htpasswd": {"realm": "Dockyard", "path": str(htpasswd)}}})
    return start_nginx(TLS_SITE, registry.host, certificates)


@pytest.mark.clients
def test_docker_search_logged_in_with_a_password_over_tls(
    htpasswd_tls_proxy: Nginx, dockerd: Dockerd, certificates: ServerCertificates, repository: str
) -> None:
    proxy = htpasswd_tls_proxy
    with httpx.Client(base_url=proxy.url, verify=trusting(certificates), auth=("alice", PASSWORD)) as alice:
        push_content(alice, repository, "v1", random_image(1, 2048))
    host = f"{REGISTRY_NAME}:{proxy.port}"
    dockerd.trust(host, certificates.ca_cert)
    anonymous = dockerd.docker("search", f"{host}/{repository}")
    assert anonymous.stdout.splitlines()[1:] == []  # nobody pulls anonymously here
    dockerd.docker("login", "--username", "alice", "--password-stdin", host, stdin=PASSWORD)
    try:
        found = dockerd.docker("search", f"{host}/{repository}")
        assert [line.split()[0] for line in found.stdout.splitlines()[1:]] == [repository]
    finally:
        dockerd.docker("logout", host)
