"""Which repositories mirror which upstream, and what a mirror asks its upstream.

Names never choose hosts: a repository under a configured prefix maps to a repository of that
prefix's upstream, and nothing else is ever contacted. Docker Hub keeps official images under
``library/``, so ``dockerhub/alpine`` is ``library/alpine`` there, as Docker itself maps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Upstream
from ..errors import ErrorCode, RegistryError
from ..references import Digest, Reference, RepositoryName
from ..storage.manifest_format import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from .upstream import BlobDownload, UpstreamClient, UpstreamRefused

DOCKER_HUB_HOSTS = frozenset(
    {"registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"}
)
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class UpstreamManifest:
    content: bytes
    media_type: str


class Mirror:
    """One upstream and the repositories that mirror it."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.client = UpstreamClient(upstream)
        self._docker_hub = (urlsplit(upstream.remote_url).hostname or "") in DOCKER_HUB_HOSTS

    @property
    def url(self) -> str:
        return self.upstream.remote_url

    def remote_name(self, name: RepositoryName) -> str:
        """The upstream's name for ``name`` ("" for the prefix itself, which names nothing)."""
        prefix = self.upstream.prefix
        rest = name[len(prefix) + 1 :] if prefix else str(name)
        if self._docker_hub and rest and "/" not in rest:
            return f"library/{rest}"
        return rest

    def source(self, remote: str) -> str:
        """Where content comes from, as downloads are labelled (never with credentials)."""
        return f"{self.url}/{remote}"

    async def manifest_digest(self, remote: str, reference: Reference) -> Digest | None:
        """The digest the upstream has for ``reference`` by a HEAD (which Docker Hub does not count
        against pull limits); None when it does not say; MANIFEST_UNKNOWN when it has none."""
        response = await self.client.request(
            "HEAD", remote, f"manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": str(reference)})
        if response.status_code != 200:
            raise self.client.failure(response)
        try:
            return Digest.parse(response.headers.get("docker-content-digest", ""))
        except RegistryError:
            return None  # no digest header: the caller GETs the manifest

    async def manifest(self, remote: str, reference: Reference) -> UpstreamManifest | None:
        response = await self.client.request(
            "GET", remote, f"manifests/{reference}", {"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.client.failure(response)
        if len(response.content) > MAX_MANIFEST_BYTES:
            raise UpstreamRefused(f"the upstream's manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        return UpstreamManifest(response.content, response.headers.get("content-type", ""))

    async def blob_size(self, remote: str, digest: Digest) -> int | None:
        return await self.client.blob_size(remote, str(digest))

    async def download(self, remote: str, digest: Digest) -> BlobDownload | None:
        return await self.client.download(remote, str(digest))

    async def tags(self, remote: str, query: str) -> tuple[int, bytes, str | None]:
        """The upstream's tags list page: status, body and Link header."""
        path = f"tags/list?{query}" if query else "tags/list"
        response = await self.client.request("GET", remote, path)
        return response.status_code, response.content, response.headers.get("link")


class Mirrors:
    """Every configured upstream; ``find`` says which one a repository mirrors."""

    def __init__(self, upstreams: tuple[Upstream, ...]) -> None:
        self.mirrors = tuple(Mirror(upstream) for upstream in upstreams)

    def find(self, name: RepositoryName) -> Mirror | None:
        for mirror in self.mirrors:
            prefix = mirror.upstream.prefix
            if not prefix or name == prefix or name.startswith(prefix + "/"):
                return mirror
        return None

    async def close(self) -> None:
        for mirror in self.mirrors:
            await mirror.client.close()
