"""The storage layout: the one place that knows where anything is stored.

It is CNCF Distribution's layout, byte for byte, so a root directory or bucket
written by Distribution is served in place, and Distribution serves ours::

    /docker/registry/v2/
        blobs/<alg>/<first two hex>/<hex>/data          content, written once, never changed
        repositories/<name>/
            _layers/<alg>/<hex>/link                     "<alg>:<hex>": the blob is in <name>
            _manifests/revisions/<alg>/<hex>/link        the manifest is in <name>
            _manifests/tags/<tag>/current/link           the digest <tag> points to
            _manifests/tags/<tag>/index/<alg>/<hex>/link every digest <tag> ever pointed to
            _uploads/<id>/data                           the bytes of an upload in progress
            _uploads/<id>/startedat                      when it began (RFC 3339), for purging
            _dockyard/referrers/<alg>/<subject hex>/<alg>/<hex>
                                                         the referrer's descriptor (JSON), kept by
                                                         Dockyard only; Distribution skips
                                                         directories whose names start with "_"

Functions here take validated value types only (RepositoryName, Tag, Digest,
UploadId), so no path can be built from unchecked input.
"""

from __future__ import annotations

from ..references import Digest, RepositoryName, Tag, UploadId

ROOT = "/docker/registry/v2"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"

LAYERS_DIR = "_layers"
MANIFESTS_DIR = "_manifests"
UPLOADS_DIR = "_uploads"
UPLOAD_DATA = "data"
UPLOAD_STARTED_AT = "startedat"


def _digest_dir(digest: Digest) -> str:
    return f"{digest.algorithm}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"


def repository(name: RepositoryName) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_link(name: RepositoryName, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{LAYERS_DIR}/{_digest_dir(digest)}/link"


def manifest_revision_link(name: RepositoryName, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{_digest_dir(digest)}/link"


def manifest_revision(name: RepositoryName, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{_digest_dir(digest)}"


def tags(name: RepositoryName) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags"


def tag(name: RepositoryName, tag: Tag) -> str:
    return f"{tags(name)}/{tag}"


def tag_current_link(name: RepositoryName, tag_: Tag) -> str:
    return f"{tag(name, tag_)}/current/link"


def tag_index_link(name: RepositoryName, tag_: Tag, digest: Digest) -> str:
    return f"{tag(name, tag_)}/index/{_digest_dir(digest)}/link"


def uploads(name: RepositoryName) -> str:
    return f"{REPOSITORIES}/{name}/{UPLOADS_DIR}"


def upload(name: RepositoryName, upload_id: UploadId) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: RepositoryName, upload_id: UploadId) -> str:
    return f"{upload(name, upload_id)}/{UPLOAD_DATA}"


def upload_started_at(name: RepositoryName, upload_id: UploadId) -> str:
    return f"{upload(name, upload_id)}/{UPLOAD_STARTED_AT}"


def referrers(name: RepositoryName, subject: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_dockyard/referrers/{_digest_dir(subject)}"


def referrer(name: RepositoryName, subject: Digest, manifest: Digest) -> str:
    return f"{referrers(name, subject)}/{_digest_dir(manifest)}"


def link_content(digest: Digest) -> bytes:
    """What a link file holds: the digest, with no newline (as Distribution writes it)."""
    return str(digest).encode()
