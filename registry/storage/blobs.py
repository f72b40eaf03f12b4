"""Blobs: immutable content stored once under its digest, linked into repositories."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from storage_drivers import InvalidOffset, PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName
from . import paths
from .links import has_link, write_link


class BlobStore:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    @property
    def fetches_at_once(self) -> bool:
        return self._driver.reads_are_round_trips

    async def size(self, digest: Digest) -> int | None:
        """The size of the stored content, or None when the registry does not hold it."""
        return await self._driver.file_size(paths.blob_data(digest))

    async def stat(self, name: RepositoryName, digest: Digest, *, fetching: bool = False) -> int:
        """The size of a blob that ``name`` holds; BLOB_UNKNOWN otherwise. ``fetching`` (a GET
        of the content, which is most likely there) where each read is a round trip: the link
        and the content's size are read at once, one round trip instead of two (on S3 a GET and
        a HEAD); otherwise the size only after the link, so a probe of an absent blob (a push's
        HEAD) costs one read."""
        link = has_link(self._driver, paths.layer_link(name, digest), digest)
        if fetching and self._driver.reads_are_round_trips:
            linked, size = await asyncio.gather(link, self.size(digest))
        else:
            linked, size = await link, None
            if linked:
                size = await self.size(digest)
        if linked and size is not None:
            return size
        raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})

    async def open(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes, with the first chunk already read: a blob gone since ``stat`` is
        BLOB_UNKNOWN here, before a response starts, not a body cut short."""
        chunks = self._driver.reader(paths.blob_data(digest), offset, length)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN) from None
        return _continued(first, chunks)

    async def fetch(
        self, name: RepositoryName, digest: Digest, offset: int = 0, length: int | None = None
    ) -> tuple[int, AsyncIterator[bytes]] | None:
        """The size of a blob that ``name`` holds and its bytes (``length`` of them, None: to the
        end, from ``offset``), the link and the content read at once: one round trip where
        reads are round trips; BLOB_UNKNOWN when ``name`` does not hold it, and nothing read of
        the content reaches the caller. None where reads are not round trips (``stat`` then
        ``open`` cost no more) or ``offset`` is beyond the end: ``stat`` tells which."""
        if not self._driver.reads_are_round_trips:
            return None
        linking = asyncio.ensure_future(has_link(self._driver, paths.layer_link(name, digest), digest))
        opening = asyncio.ensure_future(self._driver.sized_reader(paths.blob_data(digest), offset, length))
        try:
            linked, opened = await asyncio.gather(linking, opening, return_exceptions=True)
        except asyncio.CancelledError:
            # The request is gone (its client hung up): content already opened is closed here, not
            # when collected (on S3 it holds a pooled connection until then).
            await _close_opened(opening)
            raise
        if isinstance(opened, BaseException):
            if linked is True and isinstance(opened, InvalidOffset):
                return None
            if linked is True and not isinstance(opened, PathNotFound):
                raise opened
        elif linked is not True:
            await close_stream(opened[1])  # release the connection: none of it goes out
        if isinstance(linked, BaseException):
            raise linked
        if not linked or isinstance(opened, BaseException):
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        return opened

    async def redirect_url(self, digest: Digest) -> str | None:
        return await self._driver.redirect_url(paths.blob_data(digest))

    async def open_local(self, digest: Digest) -> int | None:
        try:
            return await self._driver.open_local(paths.blob_data(digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN) from None

    async def link(self, name: RepositoryName, digest: Digest) -> None:
        await write_link(self._driver, paths.layer_link(name, digest), digest)

    async def mount(self, name: RepositoryName, source: RepositoryName | None, digest: Digest) -> int | None:
        """Link a blob into ``name`` from ``source`` (or from anywhere when None); its size, or
        None when it cannot be mounted."""
        if source is not None:
            try:
                size = await self.stat(source, digest)
            except RegistryError:
                return None
        else:
            found = await self.size(digest)
            if found is None:
                return None
            size = found
        # Not synced: a pull finds a mounted blob only through a manifest, and the manifest PUT
        # that refers to it reads this link first and syncs its own renames after, which commits
        # this one too. A crash of the machine before that PUT may lose the mount (never tear
        # it): the push had not finished, and the client mounts the blob again. The source's
        # link, just read, holds the same digest: the driver may share it rather than write.
        like = None if source is None else paths.layer_link(source, digest)
        await write_link(self._driver, paths.layer_link(name, digest), digest, synced=False, like=like)
        return size

    async def unlink(self, name: RepositoryName, digest: Digest) -> None:
        """Remove the blob from ``name``; the content stays until garbage collection."""
        await self.stat(name, digest)
        try:
            await self._driver.delete(paths.layer(name, digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)}) from None

    async def ingest(self, name: RepositoryName, source_path: str, digest: Digest, size: int) -> None:
        """Make verified upload data the blob ``digest`` and link it into ``name``.

        When the registry already holds the content, the upload is dropped instead
        of moved, once linked: content addressing makes the two identical. A new blob's
        content is moved before it is linked, so that a crash never leaves a link to
        nothing.
        """
        if await self.size(digest) == size:
            await self.link(name, digest)
            with contextlib.suppress(PathNotFound):  # dropped by a concurrent finishing of it
                await self._driver.delete(source_path)
            return
        try:
            await self._driver.move(source_path, paths.blob_data(digest), size)
        except PathNotFound:
            # Gone from the upload: fine when a concurrent finishing of it (a client's retry
            # while the first went on past its answer) has just made the blob.
            if await self.size(digest) != size:
                raise
        await self.link(name, digest)


async def _continued(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk
    finally:
        await close_stream(chunks)


async def _close_opened(opening: asyncio.Future[tuple[int, AsyncIterator[bytes]]]) -> None:
    """Close the stream ``opening`` gave or gives, once it has ended (cancelled meanwhile)."""
    if not opening.done():
        opening.cancel()
        await asyncio.wait([opening])
    if not opening.cancelled() and opening.exception() is None:
        await close_stream(opening.result()[1])


async def close_stream(chunks: AsyncIterator[bytes | memoryview]) -> None:
    """Release the open file or connection behind a stream not read to its end."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()
