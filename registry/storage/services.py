"""What the storage services promise each other and the handlers, for the services a capability
wraps: a pull-through cache wraps blob and manifest reads, and garbage collection sees every
place a blob becomes referenced (a mount, a finished upload, a pushed manifest).

A wrapper implements the protocol by calling the service it was given (see ``Wrappers`` in
``registry.storage``); the other services use the wrapped one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..references import Digest, Reference, RepositoryName, Tag
    from .manifest_format import Manifest
    from .manifests import StoredManifest


class BlobService(Protocol):
    @property
    def fetches_at_once(self) -> bool:
        """Whether ``fetch`` reads the link and the content at once (where each read is a round
        trip); otherwise it answers None, and ``stat`` then ``open`` cost no more."""

    async def size(self, digest: Digest) -> int | None:
        """The size of the stored content, or None when the registry does not hold it."""

    async def stat(self, name: RepositoryName, digest: Digest, *, fetching: bool = False) -> int:
        """The size of a blob that ``name`` holds; BLOB_UNKNOWN otherwise. ``fetching``: the
        caller is about to serve the content, so the blob is most likely there."""

    async def open(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes, BLOB_UNKNOWN when it is gone."""

    async def fetch(
        self, name: RepositoryName, digest: Digest, offset: int = 0, length: int | None = None
    ) -> tuple[int, AsyncIterator[bytes]] | None:
        """The size of a blob that ``name`` holds and a stream of its bytes from ``offset`` (the
        caller reads it to its end or closes it), the link and the content read at once;
        BLOB_UNKNOWN otherwise. None when ``stat`` and ``open`` serve better, or ``offset`` is
        beyond the end."""

    async def redirect_url(self, digest: Digest) -> str | None:
        """Where clients can fetch the blob from storage directly, when the driver offers it."""

    async def open_local(self, digest: Digest) -> int | None:
        """A read-only descriptor of the blob's file on this machine (the caller closes it), or
        None when the storage is elsewhere; BLOB_UNKNOWN when it is gone."""

    async def mount(self, name: RepositoryName, source: RepositoryName | None, digest: Digest) -> int | None:
        """Link a blob into ``name`` from ``source`` (or from anywhere when None); its size, or
        None when it cannot be mounted."""

    async def unlink(self, name: RepositoryName, digest: Digest) -> None:
        """Remove the blob from ``name``; BLOB_UNKNOWN when it holds no such blob."""

    async def ingest(self, name: RepositoryName, source_path: str, digest: Digest, size: int) -> None:
        """Make verified upload data the blob ``digest`` and link it into ``name``."""


class ManifestService(Protocol):
    async def get(self, name: RepositoryName, reference: Reference) -> StoredManifest:
        """The manifest as pushed; MANIFEST_UNKNOWN when ``name`` holds none under ``reference``."""

    async def put(
        self,
        name: RepositoryName,
        reference: Reference,
        content: bytes,
        content_type: str | None,
        extra_tags: tuple[Tag, ...] = (),
    ) -> tuple[Digest, Manifest]:
        """Validate and store a manifest, then point the tags at it."""

    async def delete(self, name: RepositoryName, digest: Digest) -> None:
        """Remove a manifest and the tags pointing at it from ``name``."""

    async def referrers(
        self, name: RepositoryName, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """The descriptors of the manifests in ``name`` whose subject is ``subject``."""
