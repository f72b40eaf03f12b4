"""Referrers: the manifests pushed with a subject, indexed at push and through the referrers tag."""

from __future__ import annotations

from typing import Any

from registry.lifecycle.guard import PushGuard
from registry.references import Digest
from registry.storage import ManifestPolicy, Storage, paths
from tests.support.images import (
    Image,
    artifact,
    random_image,
    referrer_descriptor,
    referrers_tag,
    referrers_tag_index,
)

from .recording import RecordingDriver, put_image, repository, tag

APP = repository("team/app")
OTHER = repository("team/other")
SBOM = "application/vnd.example.sbom"
SIGNATURE = "application/vnd.example.signature"


async def push_referrer(storage: Storage, subject: Image, artifact_type: str) -> Image:
    referrer = artifact(subject.manifest, artifact_type, {"org.example.nonce": artifact_type})
    await put_image(storage, APP, referrer)
    return referrer


def by_digest(referrers: list[Image]) -> list[dict[str, Any]]:
    return sorted((referrer_descriptor(r) for r in referrers), key=lambda d: str(d["digest"]))


async def test_referrers_are_listed_by_digest_and_filtered_by_artifact_type(storage: Storage) -> None:
    subject = random_image(layers=1, layer_size=64)  # never pushed: a subject need not exist
    sboms = [await push_referrer(storage, subject, SBOM) for _ in range(3)]
    signature = await push_referrer(storage, subject, SIGNATURE)
    subject_digest = Digest.parse(subject.digest)

    assert await storage.manifests.referrers(APP, subject_digest, None) == by_digest([*sboms, signature])
    assert await storage.manifests.referrers(APP, subject_digest, SBOM) == by_digest(sboms)
    assert await storage.manifests.referrers(APP, subject_digest, "application/other") == []
    assert await storage.manifests.referrers(OTHER, subject_digest, None) == []
    assert await storage.manifests.referrers(APP, Digest.of(b"no referrers"), None) == []


async def test_a_deleted_referrer_leaves_the_list(storage: Storage) -> None:
    subject = random_image(layers=1, layer_size=64)
    kept = await push_referrer(storage, subject, SBOM)
    deleted = await push_referrer(storage, subject, SBOM)
    await storage.manifests.delete(APP, Digest.parse(deleted.digest))
    assert await storage.manifests.referrers(APP, Digest.parse(subject.digest), None) == by_digest([kept])


async def test_entries_whose_manifest_is_gone_are_not_listed(
    storage: Storage, driver: RecordingDriver
) -> None:
    """Another registry on the same storage may delete the revision without the index entry."""
    subject = random_image(layers=1, layer_size=64)
    gone = await push_referrer(storage, subject, SBOM)
    gone_digest = Digest.parse(gone.digest)
    await driver.delete(paths.manifest_revision(APP, gone_digest))
    subject_digest = Digest.parse(subject.digest)
    assert await driver.get_content(paths.referrer(APP, subject_digest, gone_digest))
    assert await storage.manifests.referrers(APP, subject_digest, None) == []
    assert await storage.referrers.list(APP, subject_digest, None) == []


async def test_referrers_listed_at_the_referrers_tag_count_when_their_subject_matches(
    driver: RecordingDriver,
) -> None:
    """Clients of registries without the referrers API keep an index under ``sha256-<hex>``; entries
    whose manifest names another subject (or is missing) are left out."""
    # The index may list missing manifests.
    storage = Storage(driver, PushGuard(driver), ManifestPolicy(index_children="none"))
    subject = random_image(layers=1, layer_size=64)
    subject_digest = Digest.parse(subject.digest)
    indexed = await push_referrer(storage, subject, SBOM)
    tagged = await push_referrer(storage, subject, SIGNATURE)
    # As an older registry stored it: without the referrers index entry.
    await storage.referrers.remove(APP, subject_digest, Digest.parse(tagged.digest))
    assert await storage.manifests.referrers(APP, subject_digest, None) == by_digest([indexed])
    stranger = await push_referrer(storage, random_image(layers=1, layer_size=64), SIGNATURE)
    missing = artifact(subject.manifest, SIGNATURE, {"org.example.nonce": "never pushed"})

    index = referrers_tag_index([indexed, tagged, stranger, missing])
    await storage.manifests.put(
        APP, tag(referrers_tag(subject.digest)), index.manifest.data, index.manifest.media_type
    )
    assert await storage.manifests.referrers(APP, subject_digest, None) == by_digest([indexed, tagged])
    assert await storage.manifests.referrers(APP, subject_digest, SIGNATURE) == by_digest([tagged])
