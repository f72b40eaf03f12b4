"""One storage root, two registries: what CNCF Distribution wrote Dockyard serves, and back.

Content goes in with skopeo (multi-arch OCI index, Docker manifest list, a six-layer image under
two tags, a Docker schema 2 image, an artifact referring to an image, a deleted manifest); the
other registry is then started on the same root and everything is checked over HTTP and pulled
back with skopeo. Distribution 2.8 has no referrers API, so artifacts pushed through it come with
the index clients keep at the referrers tag instead, which Dockyard must then answer from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.containers import ContainerTools
from tests.support.distribution import StartDistribution
from tests.support.images import (
    Image,
    ImageIndex,
    artifact,
    every_blob,
    multi_arch_index,
    random_image,
    read_dir_layout,
    referrer_descriptor,
    referrers_tag,
    referrers_tag_index,
    write_dir_layout,
    write_oci_layout,
)
from tests.support.pushing import push_manifest
from tests.support.registry import StartRegistry
from tests.support.served import RegistryEndpoint, Served

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SBOM_TYPE = "application/vnd.example.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"


@dataclass(frozen=True)
class Pushed:
    repository: str
    tag: str
    content: Image | ImageIndex
    manifest_only: bool = False  # PUT over HTTP, its children pushed before


@dataclass
class Expected:
    """What a root holds: tagged content, manifests pushed then deleted, referrers by subject."""

    pushed: list[Pushed]
    deleted: list[Pushed]
    referrers: dict[tuple[str, str], list[Image]]

    def tags(self) -> dict[str, set[str]]:
        tags: dict[str, set[str]] = {}
        for item in self.pushed:
            tags.setdefault(item.repository, set()).add(item.tag)
        return tags

    def __add__(self, other: Expected) -> Expected:
        return Expected(
            self.pushed + other.pushed, self.deleted + other.deleted, self.referrers | other.referrers
        )


def content_set(prefix: str, referrers_api: bool) -> Expected:
    """Fresh content under ``prefix``. Without a referrers API on the registry written to, clients
    also keep the artifact in the index at the subject's referrers tag."""
    layered = random_image(layers=6)
    sbom = artifact(layered.manifest, SBOM_TYPE, {"org.example.kind": "sbom"})
    app = f"{prefix}/team/app"
    # skopeo 1.9 drops artifactType from index entries, so the referrers tag index goes over HTTP.
    referrers_tag_push = [
        Pushed(app, referrers_tag(layered.digest), referrers_tag_index([sbom]), manifest_only=True)
    ]
    return Expected(
        pushed=[
            Pushed(f"{prefix}/multi", "v1", multi_arch_index(layers=2)),
            Pushed(f"{prefix}/docker-list", "v1", multi_arch_index(layers=1, docker=True)),
            Pushed(app, "1.0", layered),
            Pushed(app, "latest", layered),
            Pushed(f"{prefix}/docker", "v2s2", random_image(layers=3, docker=True)),
            Pushed(app, "sbom", sbom),
            *([] if referrers_api else referrers_tag_push),
        ],
        deleted=[Pushed(app, "old", random_image(layers=1))],
        referrers={(app, layered.digest): [sbom]},
    )


def push(tools: ContainerTools, registry: RegistryEndpoint, items: list[Pushed], work: Path) -> None:
    """skopeo copy --all from an OCI layout (OCI media types) or a dir: layout (Docker ones)."""
    work.mkdir()
    for number, item in enumerate(items):
        if item.manifest_only:
            manifest = item.content.manifest
            with httpx.Client(base_url=registry.url, timeout=60) as http:
                digest = push_manifest(http, item.repository, item.tag, manifest.data, manifest.media_type)
            assert digest == item.content.digest
            continue
        source_dir = work / f"source-{number}-{item.tag}"
        if item.content.manifest.media_type.startswith("application/vnd.docker"):
            source = f"dir:{write_dir_layout(source_dir, item.content)}"
        else:
            source = f"oci:{write_oci_layout(source_dir, {item.tag: item.content})}:{item.tag}"
        destination = f"docker://{registry.host}/{item.repository}:{item.tag}"
        tools.skopeo("copy", "--all", "--digestfile", str(work / "digest"), source, destination)
        assert (work / "digest").read_text() == item.content.digest


def push_and_delete(
    tools: ContainerTools, registry: RegistryEndpoint, expected: Expected, work: Path
) -> None:
    push(tools, registry, expected.pushed + expected.deleted, work)
    for item in expected.deleted:
        tools.skopeo("delete", f"docker://{registry.host}/{item.repository}:{item.tag}")


def assert_serves(
    tools: ContainerTools,
    registry: RegistryEndpoint,
    expected: Expected,
    work: Path,
    referrers_api: bool,
) -> None:
    """Catalog, tags, manifests byte for byte, blobs by digest, skopeo pulls, deletions, referrers."""
    work.mkdir()
    served = Served(registry.url)
    try:
        tags = expected.tags()
        assert sorted(served.catalog(page_size=2)) == sorted(tags)
        for repository, repository_tags in tags.items():
            assert sorted(served.tags(repository)) == sorted(repository_tags)
        for number, item in enumerate(expected.pushed):
            assert served.manifest(item.repository, item.tag).data == item.content.manifest.data
            everything = {blob.digest for blob in every_blob(item.content)}
            assert set(served.verify_tree(item.repository, item.tag)) == everything
            reference = f"docker://{registry.host}/{item.repository}:{item.tag}"
            inspected = json.loads(tools.skopeo("inspect", "--raw", reference).stdout)
            assert inspected == json.loads(item.content.manifest.data)
            if not item.manifest_only:  # skopeo 1.9 would rewrite that index on the way
                pulled = work / f"pulled-{number}"
                tools.skopeo("copy", "--all", reference, f"dir:{pulled}")
                assert read_dir_layout(pulled) == everything
        for item in expected.deleted:
            path = f"/v2/{item.repository}/manifests/{item.content.digest}"
            assert served.status("GET", path) == 404
            assert served.status("GET", f"/v2/{item.repository}/manifests/{item.tag}") == 404
        for (repository, subject), referrers in expected.referrers.items():
            for referrer in referrers:
                served.verify_tree(repository, referrer.digest)
            if referrers_api:
                listed = served.referrers(repository, subject)["manifests"]
                assert listed == [referrer_descriptor(referrer) for referrer in referrers]
    finally:
        served.close()


def test_distribution_root_served_by_dockyard_and_back(
    start_distribution: StartDistribution,
    start_registry: StartRegistry,
    container_tools: ContainerTools,
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    written_by_distribution = content_set("from-distribution", referrers_api=False)
    distribution = start_distribution(root)
    push_and_delete(container_tools, distribution, written_by_distribution, tmp_path / "push-1")
    distribution.stop()

    dockyard = start_registry(root=root)
    # (The referrers API over Distribution's referrers tags has a test of its own, below.)
    assert_serves(container_tools, dockyard, written_by_distribution, tmp_path / "pull-1", False)
    # Dockyard adds to the same root: new repositories and a new tag in an existing one.
    added = content_set("from-dockyard", referrers_api=True)
    push_and_delete(container_tools, dockyard, added, tmp_path / "push-2")
    extra_tag = Pushed("from-distribution/team/app", "2.0", random_image(layers=2))
    push(container_tools, dockyard, [extra_tag], tmp_path / "push-3")
    dockyard.stop()

    distribution.restart()
    everything = written_by_distribution + added + Expected([extra_tag], [], {})
    assert_serves(container_tools, distribution, everything, tmp_path / "pull-2", False)


def test_dockyard_root_served_by_distribution(
    start_distribution: StartDistribution,
    start_registry: StartRegistry,
    container_tools: ContainerTools,
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    written_by_dockyard = content_set("from-dockyard", referrers_api=True)
    dockyard = start_registry(root=root)
    push_and_delete(container_tools, dockyard, written_by_dockyard, tmp_path / "push")
    assert_serves(container_tools, dockyard, written_by_dockyard, tmp_path / "check", True)
    dockyard.stop()

    distribution = start_distribution(root)
    assert_serves(container_tools, distribution, written_by_dockyard, tmp_path / "pull", False)


def test_referrers_tags_written_by_distribution_feed_dockyard_referrers_api(
    start_distribution: StartDistribution,
    start_registry: StartRegistry,
    container_tools: ContainerTools,
    tmp_path: Path,
) -> None:
    """OCI 1.1 "Enabling the Referrers API": manifests listed at a referrers tag, pushed while the
    registry had no referrers API, MUST be in the referrers API's answer."""
    root = tmp_path / "root"
    subject = random_image(layers=1)
    sbom = artifact(subject.manifest, SBOM_TYPE, {"org.example.kind": "sbom"})
    signature = artifact(subject.manifest, SIGNATURE_TYPE, {"org.example.kind": "signature"})
    app = "legacy/app"
    distribution = start_distribution(root)
    push(
        container_tools,
        distribution,
        [
            Pushed(app, "1.0", subject),
            Pushed(app, "sbom", sbom),
            Pushed(app, "signature", signature),
            Pushed(
                app,
                referrers_tag(subject.digest),
                referrers_tag_index([sbom, signature]),
                manifest_only=True,
            ),
        ],
        tmp_path / "push",
    )
    distribution.stop()

    dockyard = start_registry(root=root)
    with Served(dockyard.url) as served:
        listed = served.referrers(app, subject.digest)["manifests"]
    by_digest = {descriptor["digest"]: descriptor for descriptor in listed}
    assert by_digest == {
        sbom.digest: referrer_descriptor(sbom),
        signature.digest: referrer_descriptor(signature),
    }
