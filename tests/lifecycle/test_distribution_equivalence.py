"""On a root CNCF Distribution 2.8 wrote, ``dockyard garbage-collect --grace-period 0s`` removes
the same files as Distribution's own ``garbage-collect`` (Debian's ``docker-registry``), with and
without ``--delete-untagged``, except where Distribution is wrong: it deletes the untagged
children of a tagged index and the referrers of a kept manifest, which Dockyard keeps, and it
leaves the layer links of the blobs it deletes, which Dockyard removes with them.

Content goes in through Distribution's HTTP API; the root is then copied, each collector runs on
its own copy, and the files each removed are compared. Both registries then serve what is left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.lifecycle.commands import blob_file, garbage_collect, push, push_blob, revision_file, stored_files
from tests.support.distribution import BINARY, StartDistribution, distribution_config
from tests.support.images import (
    OCI_MANIFEST,
    Blob,
    Image,
    ImageIndex,
    Layer,
    artifact,
    digest_of,
    image_index,
    json_bytes,
    random_image,
)
from tests.support.registry import StartRegistry, default_config
from tests.support.served import Served

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@dataclass
class Written:
    root: Path
    tagged: dict[tuple[str, str], Image | ImageIndex]
    index: ImageIndex
    """Tagged; its children were pushed by digest only."""
    referrer: Image
    """Untagged; its subject is a tagged image."""


@pytest.fixture(scope="module")
def written(start_distribution: StartDistribution, tmp_path_factory: pytest.TempPathFactory) -> Written:
    root = tmp_path_factory.mktemp("distribution-root")
    distribution = start_distribution(root)
    tagged: dict[tuple[str, str], Image | ImageIndex] = {}
    with Served(distribution.url) as served:
        shared_base = random_image(layers=2, layer_size=8192)
        for name, tag, content in (
            ("eq/app", "v1", random_image(layers=2, layer_size=8192)),
            ("eq/app", "v2", random_image(layers=1, layer_size=8192)),
            ("eq/shared", "v1", shared_base),
        ):
            push(served, name, tag, content)
            tagged[(name, tag)] = content
        moved = random_image(layers=1, layer_size=8192)
        push(served, "eq/app", "moving", moved)
        replacement = random_image(layers=1, layer_size=8192)
        push(served, "eq/app", "moving", replacement)  # `moved` stays untagged
        tagged[("eq/app", "moving")] = replacement
        deleted = _sharing(shared_base.layers[0])  # that layer stays: eq/shared uses it
        push(served, "eq/gone", "v1", deleted)
        assert served.status("DELETE", f"/v2/eq/gone/manifests/{deleted.digest}") == 202
        orphan = os.urandom(5000)
        push_blob(served.http, "eq/app", orphan, digest_of(orphan))
        untagged = random_image(layers=1, layer_size=8192)
        push(served, "eq/app", untagged.digest, untagged)
        index = image_index([random_image(layers=1, architecture=a) for a in ("amd64", "arm64")])
        push(served, "eq/multi", "v1", index)
        tagged[("eq/multi", "v1")] = index
        subject = tagged[("eq/app", "v1")]
        assert isinstance(subject, Image)
        referrer = artifact(subject.manifest, "application/vnd.example.sbom", {"k": "v"})
        push(served, "eq/app", referrer.digest, referrer)
    distribution.stop()
    return Written(root, tagged, index, referrer)


def _sharing(layer: Layer) -> Image:
    """A fresh image whose layers are one of its own and ``layer``."""
    base = random_image(layers=1, layer_size=8192)
    layers = [*base.layers, layer]
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": base.config.descriptor(),
        "layers": [each.blob.descriptor() for each in layers],
    }
    return Image(Blob(OCI_MANIFEST, json_bytes(document)), base.config, layers, base.platform)


def _layer_links_of(files: set[str], blob_files: set[str]) -> set[str]:
    hexes = {f.split("/")[-2] for f in blob_files}
    return {f for f in files if "/_layers/" in f and f.split("/")[-2] in hexes}


def _copy(root: Path, destination: Path) -> Path:
    shutil.copytree(root, destination, symlinks=True)
    return destination


def _distribution_gc(root: Path, workdir: Path, delete_untagged: bool) -> None:
    config = workdir / "distribution-gc.yml"
    config.write_text(yaml.safe_dump(distribution_config(root, "127.0.0.1:1")))
    command = [BINARY, "garbage-collect", str(config)] + (["--delete-untagged"] if delete_untagged else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _dockyard_gc(root: Path, workdir: Path, delete_untagged: bool) -> None:
    config = workdir / "dockyard-gc.yml"
    config.write_text(yaml.safe_dump(default_config(root)))
    garbage_collect(config, "--grace-period", "0s", *(["--delete-untagged"] if delete_untagged else []))


@pytest.mark.parametrize("delete_untagged", [False, True], ids=["all-manifests", "delete-untagged"])
def test_removes_what_distribution_removes(
    written: Written, tmp_path: Path, start_registry: StartRegistry, delete_untagged: bool
) -> None:
    before = stored_files(written.root)
    theirs = _copy(written.root, tmp_path / "theirs")
    ours = _copy(written.root, tmp_path / "ours")
    _distribution_gc(theirs, tmp_path, delete_untagged)
    _dockyard_gc(ours, tmp_path, delete_untagged)
    removed_by_distribution = before - stored_files(theirs)
    removed_by_dockyard = before - stored_files(ours)
    assert removed_by_dockyard, "the content left nothing to collect: the comparison proves nothing"

    expected = set(removed_by_distribution)
    if delete_untagged:
        # Where Distribution is wrong: children of a tagged index, referrers of a kept manifest.
        for image in [*written.index.images, written.referrer]:
            repository = "eq/multi" if image in written.index.images else "eq/app"
            expected.discard(revision_file(repository, image.digest))
            expected -= {blob_file(blob.digest) for blob in [*image.blobs, image.manifest]}
        assert expected != removed_by_distribution, "Distribution kept what it gets wrong: check the content"
    # Distribution 2.8 leaves the layer links of the blobs it deletes dangling; Dockyard removes
    # them with the blob, as Distribution 3 does.
    expected |= _layer_links_of(before, {f for f in expected if "/blobs/" in f})
    assert sorted(removed_by_dockyard - expected) == []
    assert sorted(expected - removed_by_dockyard) == []

    registry = start_registry(root=ours)
    with Served(registry.url) as served:
        for (name, tag), _ in sorted(written.tagged.items()):
            served.verify_tree(name, tag)
        if delete_untagged:
            served.verify_tree("eq/app", written.referrer.digest)
    registry.stop()
