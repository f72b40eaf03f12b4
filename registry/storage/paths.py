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
            _dockyard/tags/<tag>/pushed                  when the tag was last pushed: the record's
                                                         storage time (written by earlier versions,
                                                         still read; the current link's time says
                                                         the same and is what a push writes now)
            _dockyard/tags/<tag>/pulled                  when the tag was last pulled: the record's
                                                         storage time (best effort, batched; see
                                                         registry/lifecycle/records.py)
            _dockyard/mirror/tags/<tag>                  when the mirrored upstream last confirmed
                                                         the tag (seconds since the epoch)
            _dockyard/mirror/used/<alg>/<hex>            when a mirrored manifest or blob was last
                                                         served (seconds since the epoch)
        _dockyard/fetches/<alg>/<hex>/leader             the fetch id that leads (storage that
                                                         creates objects exclusively only)
        _dockyard/fetches/<alg>/<hex>/<fetch id>/        a mirrored blob being downloaded
            claim                                        who downloads it (see registry/proxy/fetches.py)
            data                                         the bytes so far; moved to blobs/ once verified
            segments/<offset>                            the same bytes, readable while they arrive
        _dockyard/gc/                                    garbage collection's records (Distribution
                                                         reads only blobs/ and repositories/)
            state                                        the maintenance lease: run, active, expiry
            lease/<generation>                           the claim that took the lease (storage that
                                                         creates objects exclusively only; 20
                                                         digits, the latest kept)
            references                                   what each manifest refers to, as the last
                                                         run found (registry/lifecycle/known.py)
            clock/<run>                                  written and listed to read the storage's clock
            runs/<run>/referenced/<alg>/<hex>            a push referred to the digest during <run>
            runs/<run>/condemned/<alg>/<first two hex>   <run> is about to delete the digests it
                                                         lists (one a line), those whose hex
                                                         starts so (registry/lifecycle/markers.py)
            runs/<run>/decided                           <run> spared what pushes referred to: the
                                                         markers left are what it deletes
            runs/<run>/condemned-repositories/<sha256 of name>
                                                         <run> is deleting the repository
        _dockyard/ui/repositories                        every repository's name as of a recent walk
                                                         of the catalog, shared by the web
                                                         interface's workers (registry/ui/names.py)
        _dockyard/usage/summary                          the latest usage figures (JSON, replaced
                                                         whole by each usage walk or GC run; see
                                                         registry/lifecycle/usage.py)
        _dockyard/notifications/<endpoint>/              webhook events not yet delivered (the
                                                         endpoint's name, or sha256-<hex of it>)
            queue/<time>-<writer>-<counter>-<events>-<size>
                                                         the events of one request, in order
            lease                                        which process delivers them
        _dockyard/notifications/_clock/<writer>          written and listed to read the storage's
                                                         clock (no endpoint's name starts with "_")

Builders here take validated value types only (RepositoryName, Tag, Digest,
UploadId), so no path can be built from unchecked input. ``parse`` reads a path
of this layout back into those types (what a walk of the tree needs), and
answers None for anything else: a foreign file is never mistaken for content.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from ..errors import RegistryError
from ..references import (
    HEX_LENGTHS,
    Digest,
    FetchId,
    RepositoryName,
    RunId,
    Tag,
    UploadId,
    is_repository_name,
)

ROOT = "/docker/registry/v2"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"

LAYERS_DIR = "_layers"
MANIFESTS_DIR = "_manifests"
UPLOADS_DIR = "_uploads"
UPLOAD_DATA = "data"
UPLOAD_STARTED_AT = "startedat"
DOCKYARD_DIR = "_dockyard"
"""Where the registry keeps what Distribution does not (it skips directories named ``_*``)."""
DOCKYARD = f"{ROOT}/{DOCKYARD_DIR}"
GC = f"{ROOT}/{DOCKYARD_DIR}/gc"
FETCHES = f"{ROOT}/{DOCKYARD_DIR}/fetches"
TAG_PUSHED = "pushed"
TAG_PULLED = "pulled"
USAGE = f"{ROOT}/{DOCKYARD_DIR}/usage"
NOTIFICATIONS = f"{ROOT}/{DOCKYARD_DIR}/notifications"
_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_WRITER = re.compile(r"[0-9a-f]{1,32}")
_QUEUE_KEY = re.compile(r"[0-9]{19}-[0-9a-f]{1,32}-[0-9]{1,12}-[0-9]{1,9}-[0-9]{1,12}")


def _digest_dir(digest: Digest) -> str:
    return f"{digest.algorithm}/{digest.hex}"


def blob(digest: Digest) -> str:
    """The directory holding a blob's data."""
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{BLOBS}/{blob_data_in_blobs(digest)}"


def blob_data_in_blobs(digest: Digest) -> str:
    """A blob's data relative to ``BLOBS``: what a web server that serves that folder is asked for."""
    return f"{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"


def repository(name: RepositoryName) -> str:
    return f"{REPOSITORIES}/{name}"


def repository_tree(prefix: str) -> str:
    """A directory of the repositories tree by the name components above it ("" for the top),
    as a walk over the tree meets them: they are listed entries, not yet a repository name."""
    return f"{REPOSITORIES}/{prefix}" if prefix else REPOSITORIES


def repository_with_manifests(path: str) -> RepositoryName | None:
    """The repository whose ``manifests`` directory ``path`` is, if it is one."""
    name = path.removeprefix(REPOSITORIES + "/").removesuffix("/" + MANIFESTS_DIR)
    if path != f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}" or not is_repository_name(name):
        return None
    return RepositoryName(name)


def manifests(name: RepositoryName) -> str:
    """The directory whose presence makes ``name`` a repository."""
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}"


def layers(name: RepositoryName) -> str:
    """The directory of ``name``'s blob links, by algorithm then hex."""
    return f"{REPOSITORIES}/{name}/{LAYERS_DIR}"


def repository_extras(name: RepositoryName) -> str:
    """What the registry keeps for ``name`` beside Distribution's layout (the referrers index)."""
    return f"{REPOSITORIES}/{name}/{DOCKYARD_DIR}"


def layer(name: RepositoryName, digest: Digest) -> str:
    """The directory of a blob's link in ``name``; deleting it unlinks the blob."""
    return f"{REPOSITORIES}/{name}/{LAYERS_DIR}/{_digest_dir(digest)}"


def layer_link(name: RepositoryName, digest: Digest) -> str:
    return f"{layer(name, digest)}/link"


def manifest_revision_link(name: RepositoryName, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{_digest_dir(digest)}/link"


def manifest_revisions(name: RepositoryName) -> str:
    """The directory of ``name``'s manifest links, by algorithm then hex."""
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions"


def manifest_revision(name: RepositoryName, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{_digest_dir(digest)}"


def tags(name: RepositoryName) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags"


def tag(name: RepositoryName, tag: Tag) -> str:
    return f"{tags(name)}/{tag}"


def tag_current_link(name: RepositoryName, tag_: Tag) -> str:
    return f"{tag(name, tag_)}/current/link"


def tag_index_entry(name: RepositoryName, tag_: Tag, digest: Digest) -> str:
    """The directory of one entry of a tag's history."""
    return f"{tag(name, tag_)}/index/{_digest_dir(digest)}"


def tag_index_link(name: RepositoryName, tag_: Tag, digest: Digest) -> str:
    return f"{tag_index_entry(name, tag_, digest)}/link"


def uploads(name: RepositoryName) -> str:
    return f"{REPOSITORIES}/{name}/{UPLOADS_DIR}"


def upload(name: RepositoryName, upload_id: UploadId) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: RepositoryName, upload_id: UploadId) -> str:
    return f"{upload(name, upload_id)}/{UPLOAD_DATA}"


def upload_started_at(name: RepositoryName, upload_id: UploadId) -> str:
    return f"{upload(name, upload_id)}/{UPLOAD_STARTED_AT}"


def started_at_in(upload_dir: str) -> str:
    """The start-time file of an upload directory found by listing ``uploads(name)``."""
    return f"{upload_dir}/{UPLOAD_STARTED_AT}"


def referrers(name: RepositoryName, subject: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{DOCKYARD_DIR}/referrers/{_digest_dir(subject)}"


def referrer(name: RepositoryName, subject: Digest, manifest: Digest) -> str:
    return f"{referrers(name, subject)}/{_digest_dir(manifest)}"


def ui_repository_names() -> str:
    return f"{ROOT}/{DOCKYARD_DIR}/ui/repositories"


def gc_state() -> str:
    return f"{GC}/state"


def gc_leases() -> str:
    return f"{GC}/lease"


def gc_lease(generation: int) -> str:
    return f"{gc_leases()}/{generation:020d}"


def gc_lease_generation(path: str) -> int | None:
    """The generation a path listed in ``gc_leases`` names; None for anything else."""
    name = path.rpartition("/")[2]
    return int(name) if len(name) == 20 and name.isdigit() else None


def gc_references() -> str:
    return f"{GC}/references"


def gc_clocks() -> str:
    return f"{GC}/clock"


def gc_clock(run: RunId) -> str:
    return f"{gc_clocks()}/{run}"


def gc_runs() -> str:
    return f"{GC}/runs"


def gc_run(run: RunId) -> str:
    return f"{GC}/runs/{run}"


def gc_referenced_records(run: RunId) -> str:
    return f"{gc_run(run)}/referenced"


def gc_referenced(run: RunId, digest: Digest) -> str:
    return f"{gc_referenced_records(run)}/{_digest_dir(digest)}"


def gc_condemned(run: RunId, digest: Digest) -> str:
    """The marker that lists ``digest`` when ``run`` condemned it, with the other condemned
    digests of its algorithm whose hex starts with the same two digits."""
    return f"{gc_run(run)}/condemned/{digest.algorithm}/{digest.hex[:2]}"


def gc_decided(run: RunId) -> str:
    return f"{gc_run(run)}/decided"


def gc_condemned_repository(run: RunId, name: RepositoryName) -> str:
    """Keyed by a hash: a name can hold "/" and be longer than a file name may be."""
    return f"{gc_run(run)}/condemned-repositories/{hashlib.sha256(name.encode()).hexdigest()}"


def _endpoint_dir(endpoint: str) -> str:
    """Any name an operator gives an endpoint: as written when it makes a plain path component."""
    if _ENDPOINT_NAME.fullmatch(endpoint):
        return f"{NOTIFICATIONS}/{endpoint}"
    return f"{NOTIFICATIONS}/sha256-{hashlib.sha256(endpoint.encode()).hexdigest()}"


def notification_queue(endpoint: str) -> str:
    return f"{_endpoint_dir(endpoint)}/queue"


def notification(endpoint: str, key: str) -> str:
    if not _QUEUE_KEY.fullmatch(key):
        raise ValueError(f"not a notification queue key: {key!r}")
    return f"{notification_queue(endpoint)}/{key}"


def notification_lease(endpoint: str) -> str:
    return f"{_endpoint_dir(endpoint)}/lease"


def notification_clock(writer: str) -> str:
    if not _WRITER.fullmatch(writer):
        raise ValueError(f"not a notification queue writer: {writer!r}")
    return f"{NOTIFICATIONS}/_clock/{writer}"


def digest_in_records(path: str) -> Digest | None:
    """The digest a ``referenced`` record found by walking ``gc_referenced_records`` names."""
    directory, _, encoded = path.rpartition("/")
    algorithm = directory.rpartition("/")[2]
    try:
        return Digest.parse(f"{algorithm}:{encoded}")
    except RegistryError:
        return None


def tag_records(name: RepositoryName) -> str:
    """The directory of every tag's push and pull records in ``name``, by tag."""
    return f"{REPOSITORIES}/{name}/{DOCKYARD_DIR}/tags"


def tag_record_dir(name: RepositoryName, tag_: Tag) -> str:
    return f"{tag_records(name)}/{tag_}"


def tag_pushed(name: RepositoryName, tag_: Tag) -> str:
    return f"{tag_record_dir(name, tag_)}/{TAG_PUSHED}"


def tag_pulled(name: RepositoryName, tag_: Tag) -> str:
    return f"{tag_record_dir(name, tag_)}/{TAG_PULLED}"


def usage_record() -> str:
    return f"{USAGE}/summary"


def mirror_used(name: RepositoryName, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{DOCKYARD_DIR}/mirror/used/{_digest_dir(digest)}"


def mirror_tag_checked(name: RepositoryName, tag_: Tag) -> str:
    return f"{REPOSITORIES}/{name}/{DOCKYARD_DIR}/mirror/tags/{tag_}"


def blob_fetches(digest: Digest) -> str:
    return f"{FETCHES}/{_digest_dir(digest)}"


def blob_fetch_leader(digest: Digest) -> str:
    return f"{blob_fetches(digest)}/leader"


def blob_fetch(digest: Digest, fetch: FetchId) -> str:
    return f"{blob_fetches(digest)}/{fetch}"


def blob_fetch_claim(digest: Digest, fetch: FetchId) -> str:
    return f"{blob_fetch(digest, fetch)}/claim"


def blob_fetch_data(digest: Digest, fetch: FetchId) -> str:
    return f"{blob_fetch(digest, fetch)}/data"


def blob_fetch_segment(digest: Digest, fetch: FetchId, offset: int) -> str:
    return f"{blob_fetch(digest, fetch)}/segments/{offset:020d}"


def link_content(digest: Digest) -> bytes:
    """What a link file holds: the digest, with no newline (as Distribution writes it)."""
    return str(digest).encode()


@dataclass(frozen=True, slots=True)
class BlobData:
    digest: Digest


@dataclass(frozen=True, slots=True)
class LayerLink:
    name: RepositoryName
    digest: Digest


@dataclass(frozen=True, slots=True)
class ManifestRevisionLink:
    name: RepositoryName
    digest: Digest


@dataclass(frozen=True, slots=True)
class TagCurrentLink:
    name: RepositoryName
    tag: Tag


@dataclass(frozen=True, slots=True)
class TagIndexLink:
    name: RepositoryName
    tag: Tag
    digest: Digest


@dataclass(frozen=True, slots=True)
class UploadFile:
    name: RepositoryName
    upload_id: UploadId
    file: str
    """The path below the upload's directory (``data``, ``startedat``, ...)."""


@dataclass(frozen=True, slots=True)
class ReferrerEntry:
    name: RepositoryName
    subject: Digest
    manifest: Digest


StoragePath = (
    BlobData | LayerLink | ManifestRevisionLink | TagCurrentLink | TagIndexLink | UploadFile | ReferrerEntry
)


def parse(path: str) -> StoragePath | None:
    """What a path of the layout stores, or None when the path is not one the layout writes."""
    if path.startswith(BLOBS + "/"):
        return _parse_blob(path[len(BLOBS) + 1 :].split("/"))
    if not path.startswith(REPOSITORIES + "/"):
        return None
    # The repository name ends before the first component that starts with "_": a name
    # component never does, and every directory the layout keeps in a repository does.
    head, _, rest = path[len(REPOSITORIES) + 1 :].partition("/_")
    name = _repository_name(head)
    if name is None or not rest:
        return None
    parts = f"_{rest}".split("/")
    try:
        return _parse_in_repository(name, parts)
    except RegistryError:
        return None  # a component that no builder would write


@functools.lru_cache(maxsize=4096)
def _repository_name(value: str) -> RepositoryName | None:
    """Remembered: a walk meets the same name once for every file of the repository."""
    return RepositoryName(value) if is_repository_name(value) else None


def _parse_blob(parts: list[str]) -> BlobData | None:
    if len(parts) != 4 or parts[3] != "data" or parts[0] not in HEX_LENGTHS:
        return None
    algorithm, prefix, encoded = parts[:3]
    try:
        digest = Digest.parse(f"{algorithm}:{encoded}")
    except RegistryError:
        return None
    return BlobData(digest) if encoded[:2] == prefix else None


def _digest_of(algorithm: str, encoded: str) -> Digest:
    return Digest.parse(f"{algorithm}:{encoded}")


def _parse_in_repository(name: RepositoryName, rest: list[str]) -> StoragePath | None:
    """Raises RegistryError for a component no builder would write."""
    head, tail = rest[0], rest[1:]
    if head == LAYERS_DIR and len(tail) == 3 and tail[2] == "link":
        return LayerLink(name, _digest_of(tail[0], tail[1]))
    if head == MANIFESTS_DIR and len(tail) == 4 and tail[0] == "revisions" and tail[3] == "link":
        return ManifestRevisionLink(name, _digest_of(tail[1], tail[2]))
    if head == MANIFESTS_DIR and len(tail) >= 4 and tail[0] == "tags" and tail[-1] == "link":
        if tail[2:] == ["current", "link"]:
            return TagCurrentLink(name, Tag.parse(tail[1]))
        if len(tail) == 6 and tail[2] == "index":
            return TagIndexLink(name, Tag.parse(tail[1]), _digest_of(tail[3], tail[4]))
    if head == UPLOADS_DIR and len(tail) >= 2:
        return UploadFile(name, UploadId.parse(tail[0]), "/".join(tail[1:]))
    if head == DOCKYARD_DIR and len(tail) == 5 and tail[0] == "referrers":
        return ReferrerEntry(name, _digest_of(tail[1], tail[2]), _digest_of(tail[3], tail[4]))
    return None
