"""Registries under test with authentication on, and a small authenticated HTTP client."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.images import Image
from tests.support.registry import RunningRegistry, StartRegistry

from .helpers import ISSUER, SERVICE, write_htpasswd
from .servers import PASSWORDS, TokenServerProcess


def htpasswd_registry(start_registry: StartRegistry, workdir: Path) -> RunningRegistry:
    htpasswd = write_htpasswd(workdir / "htpasswd", PASSWORDS)
    return start_registry(config={"auth": {"htpasswd": {"realm": "Dockyard", "path": str(htpasswd)}}})


def token_registry(start_registry: StartRegistry, server: TokenServerProcess) -> RunningRegistry:
    token = {
        "realm": server.url,
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(server.key.certificate_path),
    }
    return start_registry(config={"auth": {"token": token}})


def fetch_token(server: TokenServerProcess, user: str | None, *scopes: str) -> str:
    auth = (user, PASSWORDS[user]) if user else None
    query = (("service", SERVICE), *(("scope", scope) for scope in scopes))
    response = httpx.get(server.url, params=query, auth=auth, timeout=10)
    response.raise_for_status()
    return str(response.json()["token"])


@dataclass
class AuthedClient:
    """Requests with a fixed Authorization header (Basic or Bearer, or none)."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def push_blob(self, repository: str, data: bytes) -> httpx.Response:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            return started
        location = started.headers["location"]
        if location.startswith("/"):
            location = self.base_url + location
        separator = "&" if "?" in location else "?"
        return httpx.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={**self.headers, "Content-Type": "application/octet-stream"},
            timeout=30,
        )

    def push_image(self, repository: str, tag: str, image: Image) -> httpx.Response:
        for blob in image.blobs:
            pushed = self.push_blob(repository, blob.data)
            if pushed.status_code != 201:
                return pushed
        return self.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            content=image.manifest.data,
            headers={"Content-Type": image.manifest.media_type},
        )


def basic_client(registry: RunningRegistry, user: str) -> AuthedClient:
    credentials = httpx.BasicAuth(user, PASSWORDS[user])
    request = httpx.Request("GET", registry.url)
    header = next(credentials.auth_flow(request)).headers["Authorization"]
    return AuthedClient(registry.url, {"Authorization": header})


def bearer_client(registry: RunningRegistry, token: str) -> AuthedClient:
    return AuthedClient(registry.url, {"Authorization": f"Bearer {token}"})


def comparable(
    response: httpx.Response, name: str, placeholder: str = "NAME"
) -> tuple[int, str, dict[str, str]]:
    """Status, body and headers with the repository name blanked, the date and request id dropped.

    Compare names of equal length: Content-Length counts the name too."""
    headers = {
        k: v.replace(name, placeholder)
        for k, v in response.headers.items()
        if k not in {"date", "x-request-id"}
    }
    return response.status_code, response.text.replace(name, placeholder), headers
