"""The blob descriptor cache (``storage.cache.blobdescriptor: inmemory``): what this worker
process recently read from storage about which repository holds which blob (and its size) and
which manifest, so that repeated HEAD and GET of a blob, and GET of a manifest, skip the link
reads (on S3 two signed requests for a HEAD of a blob, one for a GET of a manifest by digest).

What it keeps: only what storage confirmed, never an absence, so content pushed through another
worker or replica is seen at once. An entry expires ``expiry`` seconds after it was read from
storage; past ``size`` entries the oldest go first (0: no bound but the expiry).

What it costs: a delete made through another worker or replica (a blob or manifest DELETE, a
repository deletion, garbage collection, a mirror's expiry) is seen by this worker up to
``expiry`` seconds late. Meanwhile a HEAD of that blob may answer 200; a GET of its content reads
storage and answers 404 BLOB_UNKNOWN, and the entry goes. Deletes made through this worker are
seen at once, even by a read that was in flight during the delete (``generation``).

Why garbage collection stays safe: the cache answers clients' reads only. Every check a write
decides on reads storage: a manifest push checks its blobs and child manifests, and the
protocol in ``lifecycle.guard``, through the blob service as built (``Storage`` hands the manifest
and upload services the uncached one); a mount checks its source; finishing an upload checks the
content. So a client that skipped uploading a blob because a cached HEAD said it is there, after
a collection removed it, gets MANIFEST_BLOB_UNKNOWN for its manifest, as it would without the
cache; the entry is dropped then, so its next attempt uploads the blob.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Literal

from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName
from .services import BlobService

_Kind = Literal["blob", "manifest"]
_Key = tuple[_Kind, RepositoryName, Digest]


class DescriptorCache:
    """One worker's (repository, digest) -> size entries, for blobs and for manifests."""

    def __init__(self, size: int, expiry: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._size = size
        self._expiry = expiry
        self._clock = clock
        # In insertion order, which is also expiry order: the first entry is the next to go.
        self._entries: OrderedDict[_Key, tuple[float, int]] = OrderedDict()
        self.generation = 0
        """Counts forgetting: a read that started before a delete must not store its answer."""

    def __len__(self) -> int:
        return len(self._entries)

    def blob_size(self, name: RepositoryName, digest: Digest) -> int | None:
        """The size of a blob ``name`` was seen to hold, or None when not known."""
        return self._get(("blob", name, digest))

    def hold_blob(self, name: RepositoryName, digest: Digest, size: int, since: int) -> None:
        """``name`` holds the blob, as storage said after ``generation`` was ``since``."""
        self._put(("blob", name, digest), size, since)

    def has_manifest(self, name: RepositoryName, digest: Digest) -> bool:
        return self._get(("manifest", name, digest)) is not None

    def hold_manifest(self, name: RepositoryName, digest: Digest, since: int) -> None:
        self._put(("manifest", name, digest), 0, since)

    def forget(self, name: RepositoryName, digest: Digest) -> None:
        """Before and after ``name`` drops ``digest`` (as a blob or a manifest)."""
        self.generation += 1
        self._entries.pop(("blob", name, digest), None)
        self._entries.pop(("manifest", name, digest), None)

    def forget_digest(self, digest: Digest) -> None:
        """The content is gone from storage: no repository holds it."""
        self._forget_where(lambda key: key[2] == digest)

    def forget_repository(self, name: RepositoryName) -> None:
        self._forget_where(lambda key: key[1] == name)

    def _forget_where(self, doomed: Callable[[_Key], bool]) -> None:
        self.generation += 1
        for key in [key for key in self._entries if doomed(key)]:
            del self._entries[key]

    def _get(self, key: _Key) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, size = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return size

    def _put(self, key: _Key, size: int, since: int) -> None:
        if since != self.generation:
            return  # something was deleted while storage was read: its answer may be stale
        now = self._clock()
        entries = self._entries
        entries.pop(key, None)
        entries[key] = (now + self._expiry, size)
        while entries and (len(entries) > self._size > 0 or next(iter(entries.values()))[0] <= now):
            entries.popitem(last=False)


class CachedBlobs:
    """The blob service clients' requests use: ``stat`` answers from the cache when it can,
    everything else is the service's own, a delete forgetting before and after."""

    def __init__(self, inner: BlobService, cache: DescriptorCache) -> None:
        self._inner = inner
        self._cache = cache

    @property
    def fetches_at_once(self) -> bool:
        return self._inner.fetches_at_once

    async def size(self, digest: Digest) -> int | None:
        return await self._inner.size(digest)

    async def stat(self, name: RepositoryName, digest: Digest, *, fetching: bool = False) -> int:
        size = self._cache.blob_size(name, digest)
        if size is None:
            since = self._cache.generation
            size = await self._inner.stat(name, digest, fetching=fetching)
            self._cache.hold_blob(name, digest, size, since)
        return size

    async def open(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        try:
            return await self._inner.open(digest, offset, length)
        except RegistryError as exc:
            if exc.code is ErrorCode.BLOB_UNKNOWN:
                self._cache.forget_digest(digest)  # collected meanwhile
            raise

    async def fetch(
        self, name: RepositoryName, digest: Digest, offset: int = 0, length: int | None = None
    ) -> tuple[int, AsyncIterator[bytes]] | None:
        if self._cache.blob_size(name, digest) is not None:
            return None  # the link is known: ``stat`` answers at once, then the content alone
        since = self._cache.generation
        fetched = await self._inner.fetch(name, digest, offset, length)
        if fetched is not None:
            self._cache.hold_blob(name, digest, fetched[0], since)
        return fetched

    async def redirect_url(self, digest: Digest) -> str | None:
        return await self._inner.redirect_url(digest)

    async def open_local(self, digest: Digest) -> int | None:
        try:
            return await self._inner.open_local(digest)
        except RegistryError as exc:
            if exc.code is ErrorCode.BLOB_UNKNOWN:
                self._cache.forget_digest(digest)  # collected meanwhile
            raise

    async def mount(self, name: RepositoryName, source: RepositoryName | None, digest: Digest) -> int | None:
        since = self._cache.generation
        size = await self._inner.mount(name, source, digest)
        if size is not None:
            self._cache.hold_blob(name, digest, size, since)
        return size

    async def unlink(self, name: RepositoryName, digest: Digest) -> None:
        self._cache.forget(name, digest)
        try:
            await self._inner.unlink(name, digest)
        finally:
            self._cache.forget(name, digest)

    async def ingest(self, name: RepositoryName, source_path: str, digest: Digest, size: int) -> None:
        await self._inner.ingest(name, source_path, digest, size)
