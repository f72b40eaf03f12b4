"""An in-memory driver that records where content lands, and helpers that store through the services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.references import Digest, RepositoryName, Tag
from registry.storage import Storage
from registry.storage.manifests import Manifests
from registry.storage.pump import IteratedBody
from storage_drivers.inmemory import InMemoryDriver
from tests.support.images import Image


class RecordingDriver(InMemoryDriver):
    """Keeps, in order, every path that content was put or moved to, and every delete call."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.deletes: list[tuple[str, ...]] = []
        """Each ``delete`` as its path, each ``delete_many`` as its paths."""

    async def _put_content(self, path: str, data: bytes) -> None:
        await super()._put_content(path, data)
        self.written.append(path)

    async def _move(self, source: str, destination: str, size: int | None) -> None:
        await super()._move(source, destination, size)
        self.written.append(destination)

    async def _delete(self, path: str) -> None:
        self.deletes.append((path,))
        await super()._delete(path)

    async def _delete_many(self, paths: Sequence[str]) -> None:
        self.deletes.append(tuple(paths))
        await super()._delete_many(paths)


def manifests_of(storage: Storage) -> Manifests:
    """The unwrapped manifest service, for its tag and revision reads (``resolve``, ``exists``),
    which the protocol a wrapper implements leaves out."""
    assert isinstance(storage.manifests, Manifests)
    return storage.manifests


def repository(name: str) -> RepositoryName:
    return RepositoryName.parse(name)


def tag(name: str) -> Tag:
    return Tag.parse(name)


def body(*chunks: bytes) -> IteratedBody:
    async def each() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return IteratedBody(each())


async def put_blob(storage: Storage, name: RepositoryName, data: bytes) -> Digest:
    """Upload ``data`` into ``name`` in one completing request, as a monolithic push does."""
    digest = Digest.of(data)
    upload = await storage.uploads.start(name)
    assert await storage.uploads.complete(name, upload, digest, body(data)) == len(data)
    return digest


async def put_image(storage: Storage, name: RepositoryName, image: Image, tags: Iterable[str] = ()) -> Digest:
    """Every blob of ``image``, then its manifest by digest with ``tags`` pointing at it."""
    for blob in image.blobs:
        await put_blob(storage, name, blob.data)
    digest, _ = await storage.manifests.put(
        name,
        Digest.parse(image.digest),
        image.manifest.data,
        image.manifest.media_type,
        tuple(Tag.parse(t) for t in tags),
    )
    return digest


@contextlib.contextmanager
def raises(code: ErrorCode) -> Iterator[None]:
    """Expect the block to raise the registry error ``code`` (and no other)."""
    with pytest.raises(RegistryError) as raised:
        yield
    assert raised.value.code is code, raised.value
