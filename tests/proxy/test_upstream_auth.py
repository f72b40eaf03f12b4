"""Mirroring an upstream that wants the Docker token flow over TLS with a private CA: Distribution 2.8
trusting the registry's own token server, as Docker Hub and GHCR work. And access control on the
mirror itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth.keygen import generate_token_key
from tests.api.client import assert_error
from tests.auth.helpers import ISSUER, SERVICE, write_htpasswd
from tests.auth.servers import PASSWORDS, TokenServerProcess, start_token_server
from tests.support.distribution import DistributionRegistry
from tests.support.images import every_blob, multi_arch_index
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.tls import ServerCertificates, make_certificates

from .conftest import V2, Stored, Upstream

pytestmark = pytest.mark.interop

MIRROR_ACCOUNT = "reader"
"""The token server's rules let this account pull every repository, and push none."""


@dataclass
class TokenUpstream:
    url: str
    """https, with a certificate of ``tls.ca_cert``."""
    tls: ServerCertificates
    token_server: TokenServerProcess
    serving: DistributionRegistry
    pushing: Upstream
    """The same storage served without auth on plain HTTP, for the tests to push to."""


@pytest.fixture(scope="module")
def token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenUpstream]:
    workdir = tmp_path_factory.mktemp("token-upstream")
    key = generate_token_key(workdir / "key", "ES256")
    token_server = start_token_server(workdir / "token-server", key)
    tls = make_certificates(workdir / "tls")
    token = {
        "realm": token_server.url,
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(key.certificate_path),
    }
    serving = DistributionRegistry(
        workdir / "serving",
        workdir / "data",
        {
            "auth": {"token": token},
            "http": {"tls": {"certificate": str(tls.server_cert), "key": str(tls.server_key)}},
        },
    ).start()
    writer = DistributionRegistry(workdir / "writer", workdir / "data").start()
    pushing = Upstream(writer.url, None)
    yield TokenUpstream(f"https://{serving.host}", tls, token_server, serving, pushing)
    pushing.http.close()
    writer.stop()
    serving.stop()
    token_server.stop()


def mirror_config(
    upstream: TokenUpstream, password: str = PASSWORDS[MIRROR_ACCOUNT], **extra: object
) -> dict[str, Any]:
    entry = {
        "prefix": "secure",
        "remoteurl": upstream.url,
        "username": MIRROR_ACCOUNT,
        "password": password,
        "cacerts": str(upstream.tls.ca_cert),
        **extra,
    }
    return {"proxy": {"upstreams": [entry]}}


def test_pulls_through_the_token_flow_over_tls(
    start_registry: StartRegistry, token_upstream: TokenUpstream
) -> None:
    index = multi_arch_index()
    token_upstream.pushing.push("vendor/tool", "2.0", index)
    mirror = start_registry(config=mirror_config(token_upstream), workers=2)
    with httpx.Client(base_url=mirror.url, timeout=60) as client:
        response = client.get(
            "/v2/secure/vendor/tool/manifests/2.0", headers={"Accept": index.manifest.media_type}
        )
        assert response.status_code == 200, response.text
        assert response.content == index.manifest.data
        for blob in every_blob(index.images[0]):
            kind = "manifests" if blob is index.images[0].manifest else "blobs"
            fetched = client.get(
                f"/v2/secure/vendor/tool/{kind}/{blob.digest}", headers={"Accept": blob.media_type}
            )
            assert fetched.status_code == 200, fetched.text
            assert fetched.content == blob.data
    # A token per worker and repository, kept until it expires: not one per request.
    challenged = token_upstream.serving.log().count("authorization token required")
    assert 1 <= challenged <= 2, challenged
    assert PASSWORDS[MIRROR_ACCOUNT] not in mirror.log()


def test_refused_credentials_are_a_502_that_does_not_show_them(
    start_registry: StartRegistry, token_upstream: TokenUpstream
) -> None:
    password = "not-the-password-51c2"
    mirror = start_registry(config=mirror_config(token_upstream, password=password), workers=1)
    response = httpx.get(f"{mirror.url}/v2/secure/vendor/tool/manifests/2.0", timeout=60)
    error = assert_error(response, 502, "UNKNOWN")
    assert "refused the configured credentials" in error["detail"]["reason"]
    assert password not in response.text
    assert password not in mirror.log()


def test_an_upstream_certificate_from_an_untrusted_ca_is_refused(
    start_registry: StartRegistry, token_upstream: TokenUpstream
) -> None:
    config = mirror_config(token_upstream)
    del config["proxy"]["upstreams"][0]["cacerts"]
    mirror = start_registry(config=config, workers=1)
    response = httpx.get(f"{mirror.url}/v2/secure/vendor/tool/manifests/2.0", timeout=60)
    error = assert_error(response, 502, "UNKNOWN")
    assert "certificate the registry does not trust" in error["detail"]["reason"]
    # Blob downloads make their own TLS connections: the same check, the same answer.
    blob = httpx.get(f"{mirror.url}/v2/secure/vendor/tool/blobs/sha256:{'1' * 64}", timeout=60)
    error = assert_error(blob, 502, "UNKNOWN")
    assert "certificate the registry does not trust" in error["detail"]["reason"]
    assert not Stored(mirror).exists(f"{V2}/repositories/secure")


def test_access_control_applies_to_mirrored_repositories(
    start_registry: StartRegistry, token_upstream: TokenUpstream, tmp_path: Path
) -> None:
    index = multi_arch_index()
    token_upstream.pushing.push("vendor/guarded", "1.0", index)
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"dev": "dev-password"})
    config = mirror_config(token_upstream)
    config["auth"] = {"htpasswd": {"realm": "mirror", "path": str(htpasswd)}}
    mirror: RunningRegistry = start_registry(config=config, workers=1)
    path = "/v2/secure/vendor/guarded/manifests/1.0"
    anonymous = httpx.get(f"{mirror.url}{path}", timeout=60)
    assert anonymous.status_code == 401
    assert not Stored(mirror).exists(f"{V2}/repositories/secure")  # nothing fetched
    signed_in = httpx.get(
        f"{mirror.url}{path}",
        auth=("dev", "dev-password"),
        headers={"Accept": index.manifest.media_type},
        timeout=60,
    )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.content == index.manifest.data
