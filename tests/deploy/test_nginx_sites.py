"""What the shipped nginx sites do themselves: TLS, headers, old clients, health, errors."""

from __future__ import annotations

import difflib
import re
import socket
import ssl
from collections.abc import Callable

import httpx
import pytest

from tests.support.nginx import (
    HTTP_SITE,
    SHIPPED,
    SHIPPED_TCP_UPSTREAM,
    SHIPPED_UPSTREAM,
    TLS_SITE,
    Nginx,
    free_dual_stack_port,
)
from tests.support.registry import RunningRegistry
from tests.support.tls import ServerCertificates

from .conftest import trusting

pytestmark = pytest.mark.nginx

API_VERSION = "docker-distribution-api-version"


def test_the_running_sites_are_the_shipped_files(tls_proxy: Nginx, http_proxy: Nginx) -> None:
    for nginx, shipped in ((tls_proxy, TLS_SITE), (http_proxy, HTTP_SITE)):
        assert (nginx.conf_dir / "dockyard").resolve() == (SHIPPED / "dockyard").resolve()
        running = (nginx.conf_dir / "site.conf").read_text().splitlines()
        changed = [
            line[2:].strip()
            for line in difflib.ndiff(shipped.read_text().splitlines(), running)
            if line.startswith("- ")
        ]
        port = 443 if nginx.tls else 80
        # The registry under test listens on TCP: the documented address line takes over from the
        # shipped socket line, as for nginx on another machine (test_unix_socket runs the socket).
        assert sorted(changed) == sorted(
            [f"listen {port}{' ssl http2' if nginx.tls else ''};",
             f"#listen [::]:{port}{' ssl http2' if nginx.tls else ''};",
             SHIPPED_UPSTREAM, SHIPPED_TCP_UPSTREAM]
        )  # fmt: skip
        assert f"    #{SHIPPED_UPSTREAM}" in running


def test_each_site_passes_nginx_t(
    tmp_path_factory: pytest.TempPathFactory, certificates: ServerCertificates
) -> None:
    for site, certs in ((TLS_SITE, certificates), (HTTP_SITE, None)):
        # As shipped, nginx on another machine, and several replicas (README, "Several replicas").
        for upstream in (
            "unix:/run/dockyard/registry.sock",
            "10.0.0.11:5000",
            ["10.0.0.11:5000", "10.0.0.12:5000"],
        ):
            nginx = Nginx(tmp_path_factory.mktemp("nginx-t"), site, upstream, certs)
            checked = nginx.check_config()
            assert checked.returncode == 0, checked.stderr
            assert "test is successful" in checked.stderr
            servers = re.findall(
                r"^\s*server (\S+);", (nginx.conf_dir / "site.conf").read_text(), re.MULTILINE
            )
            assert servers == ([upstream] if isinstance(upstream, str) else upstream)


def test_as_shipped_the_sites_start_on_a_host_without_ipv6(
    tmp_path_factory: pytest.TempPathFactory,
    certificates: ServerCertificates,
    proxied_registry: RunningRegistry,
) -> None:
    """nginx refuses to start when a listen address's family is missing, so the sites ship
    their IPv6 listen line commented: as shipped they listen on IPv4 alone."""
    for site, certs in ((TLS_SITE, certificates), (HTTP_SITE, None)):
        assert not re.search(r"^\s*listen\s+\[", site.read_text(), re.MULTILINE)
        nginx = Nginx(tmp_path_factory.mktemp("nginx-v4"), site, proxied_registry.host, certs, ipv6=False)
        nginx.start()
        try:
            verify = trusting(certs) if certs else True
            assert httpx.get(f"{nginx.url}/v2/", verify=verify).status_code == 200
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("::1", nginx.port), timeout=5).close()
        finally:
            nginx.stop()


def handshake(proxy: Nginx, context: ssl.SSLContext) -> tuple[str | None, str, str | None]:
    """TLS version, cipher and ALPN protocol nginx agrees to with ``context``."""
    with (
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return tls.version(), cipher[0], tls.selected_alpn_protocol()


def test_tls_versions_ciphers_and_http2(tls_proxy: Nginx, certificates: ServerCertificates) -> None:
    modern = trusting(certificates)
    modern.minimum_version = ssl.TLSVersion.TLSv1_3
    modern.set_alpn_protocols(["h2", "http/1.1"])
    assert handshake(tls_proxy, modern)[0] == "TLSv1.3"
    assert handshake(tls_proxy, modern)[2] == "h2"

    tls12 = trusting(certificates)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher, _ = handshake(tls_proxy, tls12)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-"), cipher  # forward secrecy
    assert "GCM" in cipher or "CHACHA20" in cipher, cipher  # AEAD only

    # CBC suites with SHA-1/SHA-2 MACs are in nginx's default cipher list; the site refuses them.
    cbc_only = trusting(certificates)
    cbc_only.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc_only.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256")
    with pytest.raises(ssl.SSLError):
        handshake(tls_proxy, cbc_only)


def test_hsts_on_every_tls_response_and_never_on_http(
    tls_proxy: Nginx, http_proxy: Nginx, certificates: ServerCertificates
) -> None:
    with httpx.Client(base_url=tls_proxy.url, verify=trusting(certificates)) as tls:
        for response in (
            tls.get("/v2/"),  # from the registry
            tls.get("/v2/", headers={"User-Agent": "docker/1.5.0"}),  # made by nginx
            tls.get("/"),
        ):
            assert response.headers["strict-transport-security"] == "max-age=63072000"
    assert "strict-transport-security" not in httpx.get(f"{http_proxy.url}/v2/").headers


def test_api_version_header_exactly_once_on_registry_responses(client: httpx.Client, repository: str) -> None:
    for response in (
        client.get("/v2/"),
        client.get(f"/v2/{repository}/manifests/missing"),
        client.post(f"/v2/{repository}/blobs/uploads/"),
    ):
        assert response.headers.get_list(API_VERSION) == ["registry/2.0"], response


@pytest.mark.parametrize(
    "user_agent",
    ["docker/1.5.0 go/go1.4.1 git-commit/a8a31ef kernel/3.13 os/linux arch/amd64",
     "docker/1.4.1 go/go1.3.3", "docker/1.3.0", "Go 1.1 package http"],
)  # fmt: skip
def test_docker_older_than_1_6_is_refused(client: httpx.Client, user_agent: str) -> None:
    response = client.get("/v2/", headers={"User-Agent": user_agent})
    assert response.status_code == 404
    assert "nginx" in response.text  # answered by nginx, never forwarded
    assert response.headers.get_list(API_VERSION) == ["registry/2.0"]


def test_docker_older_than_1_6_is_refused_on_blob_downloads_too(
    client: httpx.Client, repository: str
) -> None:
    """Blob downloads have a location of their own (larger reads from the registry)."""
    digest = "sha256:" + "0" * 64
    old = {"User-Agent": "docker/1.5.0 go/go1.4.1"}
    refused = client.get(f"/v2/{repository}/blobs/{digest}", headers=old)
    assert refused.status_code == 404
    assert "nginx" in refused.text  # answered by nginx, never forwarded
    assert refused.headers.get_list(API_VERSION) == ["registry/2.0"]
    unknown = client.get(f"/v2/{repository}/blobs/{digest}")
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["code"] == "BLOB_UNKNOWN"  # the registry's answer


@pytest.mark.parametrize(
    "user_agent",
    ["docker/1.6.0 go/go1.4.2", "docker/1.5.0-dev", "docker/20.10.24+dfsg1 go/go1.19.8",
     "containers/5.23.1 (github.com/containers/image)", "Go-http-client/1.1"],
)  # fmt: skip
def test_current_clients_pass(client: httpx.Client, user_agent: str) -> None:
    response = client.get("/v2/", headers={"User-Agent": user_agent})
    assert response.status_code == 200
    assert response.json() == {}


def test_nginx_errors_carry_the_api_version_header(
    start_nginx: Callable[..., Nginx], certificates: ServerCertificates
) -> None:
    """While the registry is down, docker still sees a v2 registry (502, not a foreign server)."""
    nothing_listens = f"127.0.0.1:{free_dual_stack_port()}"
    nginx = start_nginx(TLS_SITE, nothing_listens, certificates)
    response = httpx.get(f"{nginx.url}/v2/", verify=trusting(certificates))
    assert response.status_code == 502
    assert response.headers.get_list(API_VERSION) == ["registry/2.0"]


def test_plain_http_to_the_tls_port_is_refused(
    tls_proxy: Nginx, proxied_registry: RunningRegistry, repository: str
) -> None:
    plain = f"http://{tls_proxy.host}"
    ping = httpx.get(f"{plain}/v2/")
    assert ping.status_code == 400
    assert "The plain HTTP request was sent to HTTPS port" in ping.text
    upload = httpx.post(f"{plain}/v2/{repository}/blobs/uploads/")
    assert upload.status_code == 400
    assert "location" not in upload.headers
    assert repository not in proxied_registry.log()  # nothing reached the registry


def test_health_endpoints_and_everything_else_reach_the_registry(client: httpx.Client) -> None:
    alive = client.get("/")
    assert (alive.status_code, alive.json()) == (200, {})
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"storage": "ok"})
    unknown = client.get("/index.html")  # the registry's JSON 404, not a file from nginx's root
    assert unknown.status_code == 404
    assert unknown.json()["errors"]
