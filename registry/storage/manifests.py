"""Manifests: stored as blobs, byte for byte, linked into their repository as revisions.

A push is written in the order blob -> revision link -> referrers entry -> tags,
so a reader never finds a tag whose manifest, or a manifest whose content, is
missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from storage_drivers import PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, Reference, RepositoryName, Tag
from . import paths
from .descriptors import DescriptorCache
from .links import has_link
from .manifest_format import Descriptor, Manifest, check_urls, parse_manifest, stored_media_type
from .referrers import Referrers, descriptor_of
from .services import BlobService
from .tags import Tags

if TYPE_CHECKING:
    from ..lifecycle.guard import PushGuard

IndexPolicy = Literal["all", "none", "list"]

_NOT_TAG_CHARACTERS = re.compile(r"[^a-zA-Z0-9._-]")


def referrers_tag(subject: Digest) -> Tag:
    """The tag the spec's referrers tag schema names for ``subject``: ``sha256-<hex>``."""
    algorithm = _NOT_TAG_CHARACTERS.sub("-", subject.algorithm[:32])
    return Tag(f"{algorithm}-{_NOT_TAG_CHARACTERS.sub('-', subject.hex[:64])}")


@dataclass(frozen=True, slots=True)
class ManifestPolicy:
    """What a pushed manifest must satisfy beyond its format (``validation.manifests``)."""

    check_references: bool = True
    """Whether blobs and child manifests must exist (``validation.disabled`` turns it off, so
    mirrors can store partial content)."""
    urls_allow: tuple[re.Pattern[str], ...] = ()
    urls_deny: tuple[re.Pattern[str], ...] = ()
    index_children: IndexPolicy = "all"
    index_platforms: tuple[tuple[str, str], ...] = ()
    """(os, architecture) pairs that must exist when ``index_children`` is ``list``."""


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    content: bytes


class _ContentCache:
    """Manifest bytes by digest. Content under a digest never changes, so this is always right;
    it is bounded by total bytes."""

    def __init__(self, max_bytes: int = 16 << 20) -> None:
        self._entries: OrderedDict[Digest, tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    def get(self, digest: Digest) -> tuple[str, bytes] | None:
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries.move_to_end(digest)
        return entry

    def put(self, digest: Digest, media_type: str, content: bytes) -> None:
        if len(content) > self._max_bytes // 8 or digest in self._entries:
            return
        self._entries[digest] = (media_type, content)
        self._bytes += len(content)
        while self._bytes > self._max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= len(evicted)


class Manifests:
    def __init__(
        self,
        driver: StorageDriver,
        blobs: BlobService,
        tags: Tags,
        referrers: Referrers,
        policy: ManifestPolicy,
        *,
        guard: PushGuard,
        descriptors: DescriptorCache | None = None,
    ) -> None:
        self._driver = driver
        self._descriptors = descriptors
        self._blobs = blobs
        self._tags = tags
        self._referrers = referrers
        self._policy = policy
        self._cache = _ContentCache()
        self._guard = guard

    async def resolve(self, name: RepositoryName, reference: Reference) -> Digest:
        if isinstance(reference, Tag):
            return await self._tags.resolve(name, reference)
        return reference

    async def get(self, name: RepositoryName, reference: Reference) -> StoredManifest:
        digest = await self.resolve(name, reference)
        if not await self._known(name, digest):
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": str(reference)})
        cached = self._cache.get(digest)
        if cached is not None:
            return StoredManifest(digest, *cached)
        try:
            content = await self._driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, {"reference": str(reference)}) from None
        media_type = stored_media_type(content)
        self._cache.put(digest, media_type, content)
        return StoredManifest(digest, media_type, content)

    async def exists(self, name: RepositoryName, digest: Digest) -> bool:
        """Whether storage holds the revision: what pushes decide on, never the cache."""
        return await has_link(self._driver, paths.manifest_revision_link(name, digest), digest)

    async def _known(self, name: RepositoryName, digest: Digest) -> bool:
        """Whether ``name`` holds the manifest, for a client's read: from the descriptor cache
        when it knows."""
        cache = self._descriptors
        if cache is None:
            return await self.exists(name, digest)
        if cache.has_manifest(name, digest):
            return True
        since = cache.generation
        if not await self.exists(name, digest):
            return False
        cache.hold_manifest(name, digest, since)
        return True

    async def put(
        self,
        name: RepositoryName,
        reference: Reference,
        content: bytes,
        content_type: str | None,
        extra_tags: tuple[Tag, ...] = (),
    ) -> tuple[Digest, Manifest]:
        """Validate and store a manifest, then point the tags at it."""
        manifest = parse_manifest(content, content_type)
        algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
        digest = Digest.of(content, algorithm)
        if isinstance(reference, Digest) and digest != reference:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID, {"expected": str(reference), "computed": str(digest)}
            )
        gc_state = await self._guard.begin()
        try:
            _, had_revision = await asyncio.gather(
                self._check_references(name, manifest), self.exists(name, digest)
            )
        except RegistryError as exc:
            self._forget_missing(name, manifest, exc)
            raise
        blob_path = paths.blob_data(digest)
        if await self._blobs.size(digest) != len(content):
            await self._driver.put_content(blob_path, content)
        # The revision, then the referrer entry, then the tags: a tag or a
        # referrer never points at a revision that is not there, even after a crash. One batch:
        # the driver writes them at once and makes them visible in this order. The tag's current
        # link, rewritten by every push, is also the record of when the tag was pushed.
        links = [(paths.manifest_revision_link(name, digest), paths.link_content(digest))]
        if manifest.subject is not None:
            descriptor = descriptor_of(manifest, digest, len(content))
            links.append(self._referrers.entry(name, manifest.subject.digest, descriptor))
        tags = ((reference,) if isinstance(reference, Tag) else ()) + extra_tags
        for tag in tags:
            links += self._tags.links(name, tag, digest)
        await self._driver.put_contents(links)
        unsafe = await self._guard.unsafe(
            gc_state,
            name,
            lambda: self._reachable(name, manifest, digest),
            lambda: self._missing(name, manifest, digest, len(content)),
        )
        if unsafe:
            await self._withdraw(name, manifest, digest, tags, had_revision)
            refused = RegistryError(
                ErrorCode.MANIFEST_BLOB_UNKNOWN,
                {"digests": [str(d) for d in unsafe], "reason": "collected by garbage collection meanwhile"},
            )
            self._forget_missing(name, manifest, refused)
            raise refused
        return digest, manifest

    async def _reachable(self, name: RepositoryName, manifest: Manifest, digest: Digest) -> set[Digest]:
        """Every digest the push makes reachable: the manifest, its blobs and children, and what
        those children refer to in turn (a collection spares content digest by digest, and the
        children of an untagged index may be condemned with it). Children not stored in ``name``
        (reference checks off) add only their digest."""
        found = {digest}
        level = [manifest]
        while level:
            found.update(d.digest for m in level for d in m.blobs)
            children = sorted({c.digest for m in level for c in m.children} - found, key=str)
            found.update(children)
            level = [m for m in await asyncio.gather(*(self._parsed(name, c) for c in children)) if m]
        return found

    async def _parsed(self, name: RepositoryName, digest: Digest) -> Manifest | None:
        try:
            stored = await self.get(name, digest)
            return parse_manifest(stored.content, stored.media_type)
        except RegistryError:
            return None

    def _forget_missing(self, name: RepositoryName, manifest: Manifest, refused: RegistryError) -> None:
        """A push refused for content ``name`` lacks: a cached HEAD may have told the client a
        blob was there (collected meanwhile), so its next attempt must see storage."""
        if self._descriptors is None or refused.code is not ErrorCode.MANIFEST_BLOB_UNKNOWN:
            return
        for descriptor in (*manifest.blobs, *manifest.children):
            self._descriptors.forget(name, descriptor.digest)

    async def _missing(
        self, name: RepositoryName, manifest: Manifest, digest: Digest, size: int
    ) -> list[Digest]:
        """What a push refers to that is no longer there (garbage collection ran meanwhile); with
        reference checks off (sparse content), only the manifest itself."""
        checks = []
        if self._policy.check_references:
            checks += [(d.digest, self._has_blob(name, d.digest)) for d in manifest.blobs]
            children = self._children_to_check(manifest)
            checks += [(d.digest, self._child_whole(name, d.digest)) for d in children]
        checks.append((digest, self._stored_whole(name, digest, size)))
        results = await asyncio.gather(*(check for _, check in checks))
        return [d for (d, _), ok in zip(checks, results, strict=True) if not ok]

    async def _child_whole(self, name: RepositoryName, digest: Digest) -> bool:
        """Whether a child manifest is in ``name`` with what it refers to (a run collecting the
        children of an untagged index may have deleted a child's blob meanwhile)."""
        child = await self._parsed(name, digest)
        if child is None:
            return False
        whole = await asyncio.gather(
            *(self._has_blob(name, d.digest) for d in child.blobs),
            *(self._child_whole(name, c.digest) for c in self._children_to_check(child)),
        )
        return all(whole)

    async def _stored_whole(self, name: RepositoryName, digest: Digest, size: int) -> bool:
        return await self.exists(name, digest) and await self._blobs.size(digest) == size

    async def _withdraw(
        self,
        name: RepositoryName,
        manifest: Manifest,
        digest: Digest,
        tags: tuple[Tag, ...],
        had_revision: bool,
    ) -> None:
        """Undo what a refused push wrote, so no tag or new revision points at collected content."""
        for tag in tags:
            with contextlib.suppress(RegistryError):  # moved or removed meanwhile
                if await self._tags.resolve(name, tag) == digest:
                    await self._tags.untag(name, tag)
        if had_revision:
            return
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(paths.manifest_revision(name, digest))
        if manifest.subject is not None:
            await self._referrers.remove(name, manifest.subject.digest, digest)

    async def referrers(
        self, name: RepositoryName, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """The referrers of ``subject`` in ``name``: those indexed at push, and those listed in an
        index at the subject's referrers tag (written by clients of registries without the
        referrers API) whose manifest has that subject. Sorted by digest, no duplicates."""
        found = {d["digest"]: d for d in await self._referrers.list(name, subject, artifact_type)}
        for descriptor in await self._tagged_referrers(name, subject):
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                found.setdefault(descriptor["digest"], descriptor)
        return [found[digest] for digest in sorted(found)]

    async def _tagged_referrers(self, name: RepositoryName, subject: Digest) -> list[dict[str, Any]]:
        try:
            index = await self.get(name, referrers_tag(subject))
            listed = parse_manifest(index.content, index.media_type).children
        except RegistryError:
            return []  # no such tag, or not an index
        descriptors = []
        for entry in listed:
            try:
                stored = await self.get(name, entry.digest)
                manifest = parse_manifest(stored.content, stored.media_type)
            except RegistryError:
                continue
            if manifest.subject is not None and manifest.subject.digest == subject:
                descriptors.append(descriptor_of(manifest, entry.digest, len(stored.content)))
        return descriptors

    async def delete(self, name: RepositoryName, digest: Digest) -> None:
        """Remove a manifest from ``name``: first the tags pointing at it, then the revision.

        A revision found here and gone by the time it is removed was deleted meanwhile: by another
        client's DELETE, or by a garbage collection deleting untagged manifests that read the tags
        once they were removed here. The manifest is deleted as asked either way: done, not
        MANIFEST_UNKNOWN."""
        if self._descriptors is not None:
            self._descriptors.forget(name, digest)
        stored = await self.get(name, digest)
        for tag in await self._tags.pointing_at(name, digest):
            with contextlib.suppress(RegistryError):  # untagged concurrently
                await self._tags.untag(name, tag)
        try:
            with contextlib.suppress(PathNotFound):  # deleted meanwhile (see above)
                await self._driver.delete(paths.manifest_revision(name, digest))
        finally:
            if self._descriptors is not None:
                self._descriptors.forget(name, digest)
        try:
            subject = parse_manifest(stored.content, stored.media_type).subject
        except RegistryError:
            subject = None  # stored by another registry in a form this one would refuse
        if subject is not None:
            await self._referrers.remove(name, subject.digest, digest)

    async def _check_references(self, name: RepositoryName, manifest: Manifest) -> None:
        check_urls(manifest.foreign_urls, self._policy.urls_allow, self._policy.urls_deny)
        if not self._policy.check_references:
            return
        children = self._children_to_check(manifest)
        # One gather of every look-up (a task each, so a driver with network calls makes them at
        # once), not one per kind inside another: an image has no children, an index no blobs.
        found = await asyncio.gather(
            *(self._blob_size(name, d.digest) for d in manifest.blobs),
            *(self.exists(name, d.digest) for d in children),
        )
        blob_sizes = found[: len(manifest.blobs)]
        children_known = found[len(manifest.blobs) :]
        missing = [str(d.digest) for d, size in zip(manifest.blobs, blob_sizes, strict=True) if size is None]
        missing += [str(d.digest) for d, ok in zip(children, children_known, strict=True) if not ok]
        if missing:
            raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, {"digests": missing})
        for descriptor, size in zip(manifest.blobs, blob_sizes, strict=True):
            if size != descriptor.size:
                raise RegistryError(
                    ErrorCode.MANIFEST_INVALID,
                    {
                        "reason": f"descriptor size {descriptor.size} differs from the blob's {size} bytes",
                        "descriptor": {
                            "mediaType": descriptor.media_type,
                            "digest": str(descriptor.digest),
                            "size": descriptor.size,
                        },
                    },
                )

    def _children_to_check(self, manifest: Manifest) -> tuple[Descriptor, ...]:
        policy = self._policy
        if policy.index_children == "none":
            return ()
        if policy.index_children == "list":
            return tuple(
                child
                for child in manifest.children
                if child.platform is not None
                and (child.platform.get("os"), child.platform.get("architecture")) in policy.index_platforms
            )
        return manifest.children

    async def _has_blob(self, name: RepositoryName, digest: Digest) -> bool:
        return await self._blob_size(name, digest) is not None

    async def _blob_size(self, name: RepositoryName, digest: Digest) -> int | None:
        """The stored size of a blob ``name`` holds, or None; one look-up serves both checks."""
        try:
            return await self._blobs.stat(name, digest)
        except RegistryError:
            return None
