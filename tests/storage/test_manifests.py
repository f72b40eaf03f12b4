"""Manifests: stored byte for byte, checked against what the repository holds, written in an order
that never leaves a tag or a referrer pointing at nothing."""

from __future__ import annotations

from registry.errors import ErrorCode
from registry.lifecycle.guard import PushGuard
from registry.references import Digest
from registry.storage import ManifestPolicy, Storage, paths
from tests.support.images import OCI_MANIFEST, artifact, image_index, random_image

from .recording import RecordingDriver, manifests_of, put_blob, put_image, raises, repository, tag

APP = repository("team/app")
OTHER = repository("team/other")


async def test_a_manifest_is_served_by_tag_and_by_digest_as_pushed(storage: Storage) -> None:
    image = random_image(layers=2, layer_size=256)
    for blob in image.blobs:
        await put_blob(storage, APP, blob.data)
    digest, manifest = await storage.manifests.put(APP, tag("v1"), image.manifest.data, OCI_MANIFEST)
    assert str(digest) == image.digest
    assert [str(d.digest) for d in manifest.blobs] == [blob.digest for blob in image.blobs]
    for reference in (tag("v1"), digest):
        stored = await storage.manifests.get(APP, reference)
        assert (stored.digest, stored.media_type, stored.content) == (
            digest,
            OCI_MANIFEST,
            image.manifest.data,
        )
    assert await manifests_of(storage).resolve(APP, tag("v1")) == digest
    assert await manifests_of(storage).exists(APP, digest)
    assert not await manifests_of(storage).exists(OTHER, digest)


async def test_unknown_references_are_manifest_unknown(storage: Storage) -> None:
    image = random_image(layers=1, layer_size=64)
    digest = await put_image(storage, APP, image, tags=["v1"])
    for name, reference in (
        (APP, tag("nope")),
        (APP, Digest.of(b"nope")),
        (OTHER, tag("v1")),
        (OTHER, digest),
    ):
        with raises(ErrorCode.MANIFEST_UNKNOWN):
            await storage.manifests.get(name, reference)


async def test_a_manifest_whose_blobs_the_repository_lacks_is_refused_and_nothing_is_written(
    storage: Storage, driver: RecordingDriver
) -> None:
    image = random_image(layers=2, layer_size=64)
    await put_blob(storage, APP, image.config.data)
    await put_blob(storage, OTHER, image.layers[0].blob.data)  # held, but not by APP
    written = list(driver.written)
    with raises(ErrorCode.MANIFEST_BLOB_UNKNOWN):
        await storage.manifests.put(APP, tag("v1"), image.manifest.data, OCI_MANIFEST)
    assert driver.written == written
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.manifests.get(APP, tag("v1"))


async def test_a_digest_reference_must_match_the_content(storage: Storage) -> None:
    image = random_image(layers=1, layer_size=64)
    for blob in image.blobs:
        await put_blob(storage, APP, blob.data)
    with raises(ErrorCode.DIGEST_INVALID):
        await storage.manifests.put(APP, Digest.of(b"other"), image.manifest.data, OCI_MANIFEST)
    assert not await manifests_of(storage).exists(APP, Digest.parse(image.digest))


async def test_a_push_writes_content_then_revision_then_referrer_then_tags(
    storage: Storage, driver: RecordingDriver
) -> None:
    subject = random_image(layers=1, layer_size=64)
    referrer = artifact(subject.manifest, "application/vnd.example.sbom", {"kind": "sbom"})
    for blob in referrer.blobs:
        await put_blob(storage, APP, blob.data)
    del driver.written[:]
    digest, _ = await storage.manifests.put(
        APP, tag("sbom"), referrer.manifest.data, OCI_MANIFEST, (tag("extra"),)
    )
    subject_digest = Digest.parse(subject.digest)
    assert driver.written == [
        paths.blob_data(digest),
        paths.manifest_revision_link(APP, digest),
        paths.referrer(APP, subject_digest, digest),
        paths.tag_current_link(APP, tag("sbom")),
        paths.tag_index_link(APP, tag("sbom"), digest),
        paths.tag_current_link(APP, tag("extra")),
        paths.tag_index_link(APP, tag("extra"), digest),
    ]


async def test_a_manifest_pushed_to_a_second_repository_reuses_the_stored_content(
    storage: Storage, driver: RecordingDriver
) -> None:
    image = random_image(layers=1, layer_size=64)
    digest = await put_image(storage, APP, image)
    await put_image(storage, OTHER, image)
    assert driver.written.count(paths.blob_data(digest)) == 1
    assert (await storage.manifests.get(OTHER, digest)).content == image.manifest.data


async def test_an_index_needs_its_children_unless_the_policy_says_otherwise(driver: RecordingDriver) -> None:
    children = [random_image(layers=1, layer_size=64, architecture=arch) for arch in ("amd64", "arm64")]
    index = image_index(children)
    strict = Storage(driver, PushGuard(driver))
    await put_image(strict, APP, children[0])
    with raises(ErrorCode.MANIFEST_BLOB_UNKNOWN):
        await strict.manifests.put(APP, tag("multi"), index.manifest.data, index.manifest.media_type)

    policy = ManifestPolicy(index_children="list", index_platforms=(("linux", "amd64"),))
    listed = Storage(driver, PushGuard(driver), policy)
    await listed.manifests.put(APP, tag("multi"), index.manifest.data, index.manifest.media_type)
    lenient = Storage(driver, PushGuard(driver), ManifestPolicy(index_children="none"))
    await lenient.manifests.put(OTHER, tag("multi"), index.manifest.data, index.manifest.media_type)
    assert await manifests_of(lenient).resolve(OTHER, tag("multi")) == Digest.parse(index.digest)


async def test_delete_removes_the_revision_and_every_tag_pointing_at_it(storage: Storage) -> None:
    kept = await put_image(storage, APP, random_image(layers=1, layer_size=64), tags=["v2"])
    image = random_image(layers=1, layer_size=64)
    digest = await put_image(storage, APP, image, tags=["v1", "latest"])
    await put_image(storage, OTHER, image, tags=["v1"])
    await storage.manifests.delete(APP, digest)
    assert not await manifests_of(storage).exists(APP, digest)
    assert await storage.tags.all_names(APP) == ["v2"]
    assert await manifests_of(storage).resolve(APP, tag("v2")) == kept
    assert (await storage.manifests.get(OTHER, tag("v1"))).digest == digest  # other repositories keep it
    assert await storage.blobs.size(digest) == len(image.manifest.data)  # content stays for GC
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.manifests.get(APP, digest)
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.manifests.delete(APP, digest)
