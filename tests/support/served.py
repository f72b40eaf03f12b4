"""Check what a registry serves over its HTTP API against digests, independently of any client."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .images import INDEX_TYPES, OCI_INDEX, digest_of

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class RegistryEndpoint(Protocol):
    """Any started registry the tests talk to (Dockyard, Distribution, a proxy in front)."""

    @property
    def host(self) -> str: ...  # "127.0.0.1:PORT", as clients put it in image names

    @property
    def url(self) -> str: ...

    def log(self) -> str: ...


@dataclass(frozen=True)
class ServedManifest:
    data: bytes
    media_type: str
    digest: str

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


class Served:
    """An HTTP client for one registry that verifies every manifest and blob it reads."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def manifest(self, repository: str, reference: str) -> ServedManifest:
        """GET a manifest; its bytes must hash to ``Docker-Content-Digest`` and any digest asked."""
        response = self.http.get(
            f"/v2/{repository}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        assert response.status_code == 200, (reference, response.status_code, response.text)
        header = response.headers["Docker-Content-Digest"]
        assert digest_of(response.content, header.split(":", 1)[0]) == header
        if ":" in reference:
            assert header == reference
        media_type = response.headers["Content-Type"].split(";", 1)[0].strip()
        declared = json.loads(response.content).get("mediaType")
        if declared:
            assert media_type == declared, (media_type, declared)
        return ServedManifest(response.content, media_type, header)

    def verify_blob(self, repository: str, digest: str, size: int | None = None) -> int:
        """Stream a blob, hash it, compare digest (and size); returns the size."""
        algorithm = digest.split(":", 1)[0]
        hasher = hashlib.new(algorithm)
        length = 0
        with self.http.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
            assert response.status_code == 200, (digest, response.status_code, response.read())
            if not response.history:  # a redirect to object storage carries no registry headers
                assert response.headers["Docker-Content-Digest"] == digest
            for chunk in response.iter_bytes():
                hasher.update(chunk)
                length += len(chunk)
        assert f"{algorithm}:{hasher.hexdigest()}" == digest
        if size is not None:
            assert length == size, (digest, length, size)
        return length

    def verify_tree(self, repository: str, reference: str) -> dict[str, str]:
        """Fetch ``reference`` and, recursively, every child manifest and blob it refers to.

        Returns digest -> media type for every item verified (the root included).
        """
        manifest = self.manifest(repository, reference)
        seen = {manifest.digest: manifest.media_type}
        document = manifest.document
        if manifest.media_type in INDEX_TYPES:
            for child in document["manifests"]:
                verified = self.verify_tree(repository, child["digest"])
                assert verified[child["digest"]] == child["mediaType"]
                assert len(self.manifest(repository, child["digest"]).data) == child["size"]
                seen |= verified
            return seen
        for blob in [document["config"], *document.get("layers", [])]:
            self.verify_blob(repository, blob["digest"], blob["size"])
            seen[blob["digest"]] = blob["mediaType"]
        return seen

    def tags(self, repository: str) -> list[str]:
        response = self.http.get(f"/v2/{repository}/tags/list")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["name"] == repository
        return list(body["tags"] or [])

    def catalog(self, page_size: int = 50) -> list[str]:
        """Every repository, following ``Link`` pagination."""
        names: list[str] = []
        url: str | None = f"/v2/_catalog?n={page_size}"
        while url:
            response = self.http.get(url)
            assert response.status_code == 200, response.text
            names += response.json()["repositories"]
            url = response.links.get("next", {}).get("url")
        return names

    def referrers(self, repository: str, digest: str) -> dict[str, Any]:
        response = self.http.get(f"/v2/{repository}/referrers/{digest}")
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["Content-Type"].startswith(OCI_INDEX)
        body: dict[str, Any] = response.json()
        return body

    def status(self, method: str, path: str) -> int:
        return self.http.request(method, path).status_code
