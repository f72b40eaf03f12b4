"""Location URLs behind the proxy carry the scheme, host and port the client used, and only those."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.launcher import Launcher, write_config
from tests.support.nginx import TLS_SITE, Nginx, free_dual_stack_port
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.tls import ServerCertificates

from .conftest import trusting
from .flows import Upload, download_digest

pytestmark = pytest.mark.nginx

SPOOFED = {
    "X-Forwarded-Host": "evil.example:1",
    "X-Forwarded-Port": "1",
    "X-Forwarded-For": "203.0.113.9",
    "Forwarded": "for=203.0.113.9;host=evil.example;proto=http",
}

# nginx connecting from 127.0.0.2 looks, to the registry, like a proxy on another machine.
REMOTE_PROXY = "    proxy_bind 127.0.0.2;\n"


def upload_through(client: httpx.Client, repository: str) -> Upload:
    """A three-request upload that follows each Location; returns it finished."""
    upload = Upload(client, repository).start()
    upload.patch_stream([os.urandom(1000), os.urandom(2000)])
    upload.finish(os.urandom(500))
    return upload


def test_locations_name_the_proxy_as_the_client_reached_it(
    proxy: Nginx, client: httpx.Client, certificates: ServerCertificates, repository: str
) -> None:
    upload = upload_through(client, repository)
    uploads = f"{proxy.url}/v2/{repository}/blobs/uploads/"
    assert all(location.startswith(uploads) for location in upload.locations[:-1]), upload.locations
    assert upload.locations[-1] == f"{proxy.url}/v2/{repository}/blobs/{upload.digest}"

    scheme = "https" if proxy.tls else "http"
    verify = trusting(certificates) if proxy.tls else True
    with httpx.Client(base_url=f"{scheme}://{proxy.host6}", verify=verify) as over_ipv6:
        started = Upload(over_ipv6, repository).start()
    assert started.location.startswith(f"{scheme}://[::1]:{proxy.port}/v2/{repository}/blobs/uploads/")


def test_forwarded_headers_from_clients_change_nothing(
    proxy: Nginx, client: httpx.Client, repository: str
) -> None:
    opposite = "http" if proxy.tls else "https"
    headers = {**SPOOFED, "X-Forwarded-Proto": opposite}
    response = client.post(f"/v2/{repository}/blobs/uploads/", headers=headers)
    assert response.status_code == 202
    assert response.headers["location"].startswith(f"{proxy.url}/v2/{repository}/blobs/uploads/")


def test_only_loopback_peers_may_set_the_scheme(proxied_registry: RunningRegistry, repository: str) -> None:
    """nginx on the same machine connects from 127.0.0.1 and is believed; anyone else is not."""
    uploads = f"{proxied_registry.url}/v2/{repository}/blobs/uploads/"
    outsider = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=outsider) as elsewhere:
        ignored = elsewhere.post(uploads, headers={"X-Forwarded-Proto": "https"})
    assert ignored.headers["location"].startswith(f"http://{proxied_registry.host}/")
    believed = httpx.post(uploads, headers={"X-Forwarded-Proto": "https"})
    assert believed.headers["location"].startswith(f"https://{proxied_registry.host}/")


def scheme_seen_from(registry: RunningRegistry, repository: str, source: str) -> str:
    """The scheme of the Location the registry answers a client at ``source`` claiming https."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        started = client.post(
            f"{registry.url}/v2/{repository}/blobs/uploads/", headers={"X-Forwarded-Proto": "https"}
        )
    assert started.status_code == 202, started.text
    return str(started.headers["location"]).split("://", 1)[0]


def test_trusted_proxies_may_set_the_scheme_and_no_one_else(
    start_registry: StartRegistry, repository: str
) -> None:
    """http.trustedproxies replaces the loopback default: the listed proxy, address or network,
    is believed; every other peer, 127.0.0.1 included, is not."""
    registry = start_registry({"http": {"trustedproxies": ["127.0.0.2", "127.0.0.4/30"]}}, workers=1)
    assert scheme_seen_from(registry, repository, "127.0.0.2") == "https"
    assert scheme_seen_from(registry, repository, "127.0.0.5") == "https"
    assert scheme_seen_from(registry, repository, "127.0.0.3") == "http"
    assert scheme_seen_from(registry, repository, "127.0.0.8") == "http"
    assert scheme_seen_from(registry, repository, "127.0.0.1") == "http"


def test_trusted_ipv4_proxies_on_a_dual_stack_listener(
    launch: Launcher,
    tmp_path: Path,
    repository: str,
) -> None:
    """Listening on [::], an IPv4 peer arrives as ::ffff:127.0.0.2; it is the same proxy."""
    port = free_dual_stack_port()
    config = {
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"[::]:{port}", "trustedproxies": ["127.0.0.2"]},
    }
    write_config(tmp_path / "config.yml", config)
    launched = launch([str(tmp_path / "config.yml")], port=port, pass_addr=False)
    registry = RunningRegistry(tmp_path, config, workers=1, port=launched.port)
    assert scheme_seen_from(registry, repository, "127.0.0.2") == "https"
    assert scheme_seen_from(registry, repository, "127.0.0.3") == "http"


def test_a_proxy_on_another_machine_listed_in_trusted_proxies(
    start_registry: StartRegistry,
    start_nginx: Callable[..., Nginx],
    certificates: ServerCertificates,
    repository: str,
) -> None:
    """Without http.host, the remote proxy's X-Forwarded-Proto keeps every Location https."""
    registry = start_registry({"http": {"trustedproxies": ["127.0.0.2"]}}, workers=1)
    nginx = start_nginx(TLS_SITE, registry.host, certificates, REMOTE_PROXY)
    with httpx.Client(base_url=nginx.url, verify=trusting(certificates)) as client:
        upload = upload_through(client, repository)
        assert all(location.startswith(f"{nginx.url}/v2/") for location in upload.locations)
        assert download_digest(client, repository, upload.digest) == (upload.digest, upload.size)


def test_proxy_on_another_machine_with_http_host(
    start_registry: StartRegistry,
    start_nginx: Callable[..., Nginx],
    certificates: ServerCertificates,
    repository: str,
) -> None:
    # Unconfigured, a remote proxy's X-Forwarded-Proto is not believed: the scheme is lost.
    unconfigured = start_registry(workers=1)
    lost = start_nginx(TLS_SITE, unconfigured.host, certificates, REMOTE_PROXY)
    with httpx.Client(base_url=lost.url, verify=trusting(certificates)) as client:
        started = client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.headers["location"].startswith(f"http://{lost.host}/")

    # http.host names the URL clients use.
    port = free_dual_stack_port()
    external = f"https://127.0.0.1:{port}"
    registry = start_registry({"http": {"host": external}}, workers=1)
    nginx = start_nginx(TLS_SITE, registry.host, certificates, REMOTE_PROXY, port)
    with httpx.Client(base_url=nginx.url, verify=trusting(certificates)) as client:
        upload = upload_through(client, repository)
        assert upload.locations[-1] == f"{external}/v2/{repository}/blobs/{upload.digest}"
        assert download_digest(client, repository, upload.digest) == (upload.digest, upload.size)


def test_proxy_on_another_machine_with_relative_urls(
    start_registry: StartRegistry,
    start_nginx: Callable[..., Nginx],
    certificates: ServerCertificates,
    repository: str,
) -> None:
    registry = start_registry({"http": {"relativeurls": True}}, workers=1)
    nginx = start_nginx(TLS_SITE, registry.host, certificates, REMOTE_PROXY)
    with httpx.Client(base_url=nginx.url, verify=trusting(certificates)) as client:
        upload = upload_through(client, repository)
        assert upload.locations[0].startswith(f"/v2/{repository}/blobs/uploads/")
        assert upload.locations[-1] == f"/v2/{repository}/blobs/{upload.digest}"
        assert download_digest(client, repository, upload.digest) == (upload.digest, upload.size)
