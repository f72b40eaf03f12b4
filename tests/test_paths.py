"""The storage layout read back: every path a builder writes parses into what it stores, and
nothing else parses at all."""

from __future__ import annotations

import pytest

from registry.references import Digest, RepositoryName, Tag, UploadId
from registry.storage import paths

NAME = RepositoryName("team/app.v2")
DIGEST = Digest.of(b"layer")
SUBJECT = Digest.of(b"subject", "sha512")
TAG = Tag("v1.0")
UPLOAD = UploadId("0123abcd-0000-4000-8000-00000000beef")


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        (paths.blob_data(DIGEST), paths.BlobData(DIGEST)),
        (paths.blob_data(SUBJECT), paths.BlobData(SUBJECT)),
        (paths.layer_link(NAME, DIGEST), paths.LayerLink(NAME, DIGEST)),
        (paths.manifest_revision_link(NAME, DIGEST), paths.ManifestRevisionLink(NAME, DIGEST)),
        (paths.tag_current_link(NAME, TAG), paths.TagCurrentLink(NAME, TAG)),
        (paths.tag_index_link(NAME, TAG, DIGEST), paths.TagIndexLink(NAME, TAG, DIGEST)),
        (paths.upload_data(NAME, UPLOAD), paths.UploadFile(NAME, UPLOAD, "data")),
        (paths.upload_started_at(NAME, UPLOAD), paths.UploadFile(NAME, UPLOAD, "startedat")),
        (
            f"{paths.upload(NAME, UPLOAD)}/hashstates/sha256/0",
            paths.UploadFile(NAME, UPLOAD, "hashstates/sha256/0"),
        ),
        (paths.referrer(NAME, SUBJECT, DIGEST), paths.ReferrerEntry(NAME, SUBJECT, DIGEST)),
    ],
)
def test_every_built_path_parses_back(path: str, stored: paths.StoragePath) -> None:
    assert paths.parse(path) == stored


def test_a_name_whose_components_look_like_the_layout_parses_whole() -> None:
    name = RepositoryName("blobs/manifests/tags/link")
    assert paths.parse(paths.layer_link(name, DIGEST)) == paths.LayerLink(name, DIGEST)


@pytest.mark.parametrize(
    "path",
    [
        paths.ROOT,
        paths.blob(DIGEST),
        f"{paths.BLOBS}/sha256/ff/{DIGEST.hex}/data",  # the fan-out directory disagrees
        f"{paths.BLOBS}/md5/ab/abcdef/data",
        f"{paths.BLOBS}/sha256/{DIGEST.hex[:2]}/{DIGEST.hex.upper()}/data",
        paths.layer(NAME, DIGEST),
        f"{paths.REPOSITORIES}/_layers/sha256/{DIGEST.hex}/link",  # no name at all
        f"{paths.REPOSITORIES}/Team/_layers/sha256/{DIGEST.hex}/link",
        f"{paths.REPOSITORIES}/team/_layers/sha256/{DIGEST.hex[:-1]}/link",
        f"{paths.manifests(NAME)}/tags/-bad-/current/link",
        f"{paths.manifests(NAME)}/tags/{TAG}/current/data",
        f"{paths.uploads(NAME)}/not-an-id/data",
        f"{paths.uploads(NAME)}/{UPLOAD}",
        f"{paths.repository(NAME)}/_other/file",
        paths.tag_pushed(NAME, TAG),  # records about content, not content: collection skips them
        paths.tag_pulled(NAME, TAG),
        "/elsewhere/docker/registry/v2/blobs/sha256/aa/x/data",
    ],
)
def test_foreign_paths_do_not_parse(path: str) -> None:
    assert paths.parse(path) is None


def test_builders_agree_with_their_directories() -> None:
    assert paths.blob_data(DIGEST).startswith(paths.blob(DIGEST) + "/")
    assert paths.layer_link(NAME, DIGEST).startswith(paths.layer(NAME, DIGEST) + "/")
    assert paths.tags(NAME).startswith(paths.manifests(NAME) + "/")
    # Deleting a repository's extras (repository deletion) takes the tag records along.
    assert paths.tag_pulled(NAME, TAG).startswith(paths.repository_extras(NAME) + "/")
    assert paths.tag_pushed(NAME, TAG).startswith(paths.tag_record_dir(NAME, TAG) + "/")
    assert paths.repository_tree("") == paths.REPOSITORIES
    assert paths.repository_tree("team") == paths.repository(RepositoryName("team"))
    assert paths.started_at_in(paths.upload(NAME, UPLOAD)) == paths.upload_started_at(NAME, UPLOAD)
