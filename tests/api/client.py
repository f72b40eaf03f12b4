"""An HTTP client for the registry under test, the pushes tests build on, and response checks.

Every response the client receives is checked for the headers every registry response
must carry (``Docker-Distribution-API-Version``) and must not carry without auth
(``WWW-Authenticate``), so each test checks them on every request it makes.

A blob GET the registry answers with a redirect (S3 storage: a presigned URL) is checked and
followed as clients follow it; see ``RegistryClient.request``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .content import (
    ALL_MANIFEST_TYPES,
    CONFIG_TYPE_OF_IMAGE,
    LAYER_TYPE_OF_IMAGE,
    OCI_MANIFEST,
    Content,
    blob,
    image_config,
    image_manifest,
)

API_VERSION = "registry/2.0"
ERROR_CODE = re.compile(r"[A-Z_]+")
_LINK = re.compile(r'<([^>]*)>;\s*rel="?next"?')
_BLOB = re.compile(r"/v2/.+/blobs/([a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)")
REDIRECT_HEADERS = ("Docker-Content-Digest", "Docker-Distribution-API-Version")
"""What the registry's redirect says about the blob, kept on the response it leads to."""


def check_common_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    assert response.headers.get("Docker-Distribution-API-Version") == API_VERSION, where
    assert "WWW-Authenticate" not in response.headers, where


@dataclass(frozen=True)
class Image:
    manifest: Content
    config: Content
    layers: tuple[Content, ...]


class RegistryClient:
    """httpx against one running registry, with the pushes tests need as one-liners."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url, timeout=60, event_hooks={"response": [check_common_headers]}
        )
        self.storage = httpx.Client(timeout=60)
        """For the storage's presigned URLs: not the registry, so no registry header checks."""

    def close(self) -> None:
        self.http.close()
        self.storage.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        blob = _BLOB.fullmatch(response.request.url.path)
        if method == "GET" and response.status_code == 307 and blob is not None:
            return self._follow_blob_redirect(response, blob.group(1), kwargs.get("headers") or {})
        return response

    def _follow_blob_redirect(
        self, redirect: httpx.Response, digest: str, headers: dict[str, str]
    ) -> httpx.Response:
        """Check the redirect, GET its target with the request's ``Range``, and return the
        storage's response with the registry's blob headers (``REDIRECT_HEADERS``) added:
        clients take those from the registry's answer, the bytes from the storage's."""
        assert redirect.headers["Docker-Content-Digest"] == digest, redirect.headers
        assert_empty_body(redirect)
        target = httpx.URL(redirect.headers["Location"])
        assert target.scheme in {"http", "https"}, target
        assert target.host, target
        assert "X-Amz-Signature" in target.params, target  # a presigned URL, not an open bucket
        forwarded = {k: v for k, v in headers.items() if k.lower() == "range"}
        stored = self.storage.get(target, headers=forwarded)
        kept = [(name, redirect.headers[name]) for name in REDIRECT_HEADERS if name not in stored.headers]
        followed = httpx.Response(
            stored.status_code,
            headers=[*stored.headers.multi_items(), *kept],
            content=stored.content,
            request=redirect.request,
        )
        followed.history = [redirect]
        return followed

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    # Blobs

    def push_blob(self, repo: str, content: Content) -> str:
        """Push in one POST (``?digest=``); the digest."""
        response = self.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": content.digest},
            content=content.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        return content.digest

    def push_blobs(self, repo: str, *contents: Content) -> None:
        for content in contents:
            self.push_blob(repo, content)

    def start_upload(self, repo: str, **params: str) -> str:
        """POST an upload session; its Location."""
        response = self.post(f"/v2/{repo}/blobs/uploads/", params=params)
        assert response.status_code == 202, response.text
        return response.headers["Location"]

    def blob_status(self, repo: str, digest: str) -> int:
        return self.head(f"/v2/{repo}/blobs/{digest}").status_code

    # Manifests

    def put_manifest(
        self,
        repo: str,
        reference: str,
        manifest: Content,
        content_type: str | None = None,
        params: Any = None,
    ) -> httpx.Response:
        return self.put(
            f"/v2/{repo}/manifests/{reference}",
            content=manifest.data,
            headers={"Content-Type": content_type or manifest.media_type},
            params=params,
        )

    def push_manifest(
        self, repo: str, reference: str, manifest: Content, params: Any = None
    ) -> httpx.Response:
        response = self.put_manifest(repo, reference, manifest, params=params)
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == manifest.digest
        return response

    def push_image(
        self,
        repo: str,
        reference: str | None = None,
        *,
        media_type: str = OCI_MANIFEST,
        os_name: str = "linux",
        architecture: str = "amd64",
        layer_count: int = 1,
        algorithm: str = "sha256",
        **manifest_options: Any,
    ) -> Image:
        """Push config, layers and an image manifest (by ``reference``, else by digest)."""
        config = image_config(os_name, architecture, CONFIG_TYPE_OF_IMAGE[media_type], algorithm)
        layers = tuple(blob(48, LAYER_TYPE_OF_IMAGE[media_type], algorithm) for _ in range(layer_count))
        self.push_blobs(repo, config, *layers)
        manifest = image_manifest(
            config, layers, media_type=media_type, algorithm=algorithm, **manifest_options
        )
        self.push_manifest(repo, reference or manifest.digest, manifest)
        return Image(manifest, config, layers)

    def get_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = ALL_MANIFEST_TYPES, method: str = "GET"
    ) -> httpx.Response:
        return self.request(
            method, f"/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(accept)}
        )

    def manifest_status(self, repo: str, reference: str) -> int:
        return self.get_manifest(repo, reference, method="HEAD").status_code

    def tags(self, repo: str) -> list[str]:
        response = self.get(f"/v2/{repo}/tags/list")
        assert response.status_code == 200, response.text
        return list(response.json()["tags"])


# Response checks


def media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("Content-Type", "")
    return content_type.split(";", 1)[0].strip()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The spec's error JSON with ``code`` first; the first error. A HEAD error has no body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert media_type(response) == "application/json", response.headers
    if response.request.method == "HEAD":
        assert response.content == b""
        return {}
    body = response.json()
    assert set(body) == {"errors"}, body
    errors = body["errors"]
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert "code" in error, error
        assert set(error) <= {"code", "message", "detail"}, error
        assert ERROR_CODE.fullmatch(error["code"]), error
        assert isinstance(error.get("message", ""), str), error
    assert errors[0]["code"] == code, body
    assert errors[0]["message"], body
    first: dict[str, Any] = errors[0]
    return first


def error_text(response: httpx.Response) -> str:
    """The whole error body as text, to look for digests or names anywhere in ``detail``."""
    return json.dumps(response.json())


def assert_empty_body(response: httpx.Response) -> None:
    assert response.headers.get("Content-Length") == "0", response.headers
    assert response.content == b""


def assert_location(client: RegistryClient, response: httpx.Response, path: str) -> None:
    """Location is the absolute URL of ``path`` on the host the client asked."""
    assert response.headers["Location"] == f"{client.base_url}{path}", response.headers


def assert_upload_session(client: RegistryClient, response: httpx.Response, repo: str, size: int) -> str:
    """A session response (202 or 204): absolute Location naming ``Docker-Upload-UUID``, and
    ``Range`` covering ``size`` bytes received (``0-0`` when none). The Location."""
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == client.base_url, location
    prefix = f"/v2/{repo}/blobs/uploads/"
    assert parts.path.startswith(prefix), location
    upload_id = parts.path[len(prefix) :]
    assert upload_id, location
    assert "/" not in upload_id, location
    assert response.headers["Docker-Upload-UUID"] == upload_id
    assert response.headers["Range"] == f"0-{max(size - 1, 0)}"
    assert_empty_body(response)
    return location


def assert_blob_created(client: RegistryClient, response: httpx.Response, repo: str, digest: str) -> None:
    assert response.status_code == 201, response.text
    assert_location(client, response, f"/v2/{repo}/blobs/{digest}")
    assert response.headers["Docker-Content-Digest"] == digest
    assert_empty_body(response)


def assert_blob_content(client: RegistryClient, repo: str, content: Content) -> None:
    response = client.get(f"/v2/{repo}/blobs/{content.digest}")
    assert response.status_code == 200, response.text
    assert response.content == content.data
    assert response.headers["Docker-Content-Digest"] == content.digest
    assert response.headers["Content-Length"] == str(content.size)


def assert_manifest_served(
    client: RegistryClient, repo: str, reference: str, manifest: Content
) -> httpx.Response:
    """GET and HEAD serve the pushed bytes, with the pushed media type and its digest."""
    response = client.get_manifest(repo, reference)
    assert response.status_code == 200, response.text
    assert response.content == manifest.data
    assert response.headers["Content-Type"] == manifest.media_type
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["Content-Length"] == str(manifest.size)
    head = client.get_manifest(repo, reference, method="HEAD")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == manifest.media_type
    assert head.headers["Docker-Content-Digest"] == manifest.digest
    assert head.headers["Content-Length"] == str(manifest.size)
    return response


def oci_tags(response: httpx.Response) -> list[str]:
    return [value.strip() for value in response.headers.get_list("OCI-Tag", split_commas=True)]


def next_link(response: httpx.Response) -> str | None:
    """The target of a ``Link: <...>; rel="next"`` header, or None."""
    header = response.headers.get("Link")
    if header is None:
        return None
    match = _LINK.fullmatch(header.strip())
    assert match, header
    return match.group(1)
