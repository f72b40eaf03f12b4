"""Blob uploads and downloads over the v2 API, following every Location the registry returns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Upload:
    """One blob upload session; ``locations`` records every Location header, in order."""

    client: httpx.Client
    repository: str
    locations: list[str] = field(default_factory=list)
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0

    @property
    def location(self) -> str:
        return self.locations[-1]

    @property
    def uuid(self) -> str:
        return self.location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    def _record(self, response: httpx.Response, status: int) -> httpx.Response:
        assert response.status_code == status, (response.status_code, response.text)
        self.locations.append(response.headers["location"])
        return response

    def start(self) -> Upload:
        self._record(self.client.post(f"/v2/{self.repository}/blobs/uploads/"), 202)
        return self

    def _counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.hasher.update(chunk)
            self.size += len(chunk)
            yield chunk

    def patch_stream(self, chunks: Iterable[bytes]) -> httpx.Response:
        """PATCH with a body of unknown length (chunked transfer encoding), as docker sends."""
        response = self._record(self.client.patch(self.location, content=self._counted(chunks)), 202)
        assert response.headers["range"] == f"0-{self.size - 1}"
        return response

    def patch_range(self, chunk: bytes) -> httpx.Response:
        """PATCH one chunk with Content-Range and Content-Length (the OCI chunked upload)."""
        headers = {"Content-Range": f"{self.size}-{self.size + len(chunk) - 1}"}
        response = self._record(
            self.client.patch(self.location, content=b"".join(self._counted([chunk])), headers=headers), 202
        )
        assert response.headers["range"] == f"0-{self.size - 1}"
        return response

    @property
    def digest(self) -> str:
        return f"sha256:{self.hasher.hexdigest()}"

    def finish(self, last: bytes = b"") -> str:
        """PUT the last bytes with the digest of everything sent; returns the digest."""
        body = b"".join(self._counted([last]))
        separator = "&" if "?" in self.location else "?"
        response = self._record(
            self.client.put(f"{self.location}{separator}digest={self.digest}", content=body), 201
        )
        assert response.headers["docker-content-digest"] == self.digest
        return self.digest


def download_digest(client: httpx.Client, repository: str, digest: str) -> tuple[str, int]:
    """Stream a blob and return the sha256 digest and size of what arrived."""
    hasher = hashlib.sha256()
    size = 0
    with client.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
        assert response.status_code == 200, response.status_code
        for chunk in response.iter_bytes(1 << 20):
            hasher.update(chunk)
            size += len(chunk)
    return f"sha256:{hasher.hexdigest()}", size
