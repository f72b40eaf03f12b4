"""The storage invariant checker itself: it passes a sound root and names each kind of damage."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integrity.layout import check_layout

V2 = Path("docker/registry/v2")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(root: Path, data: bytes) -> str:
    digest = _digest(data)
    hex_ = digest[7:]
    _write(root / V2 / "blobs/sha256" / hex_[:2] / hex_ / "data", data)
    return digest


def _link(root: Path, relative: str, digest: str) -> None:
    _write(root / V2 / "repositories" / relative / "link", digest.encode())


def _sound_root(root: Path) -> dict[str, str]:
    config, layer = b"{}", b"layer"
    config_digest, layer_digest = _blob(root, config), _blob(root, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": "c", "digest": config_digest, "size": 2},
            "layers": [{"mediaType": "l", "digest": layer_digest, "size": 5}],
        }
    ).encode()
    manifest_digest = _blob(root, manifest)
    for digest in (config_digest, layer_digest):
        _link(root, f"team/app/_layers/sha256/{digest[7:]}", digest)
    _link(root, f"team/app/_manifests/revisions/sha256/{manifest_digest[7:]}", manifest_digest)
    _link(root, "team/app/_manifests/tags/v1/current", manifest_digest)
    _link(root, f"team/app/_manifests/tags/v1/index/sha256/{manifest_digest[7:]}", manifest_digest)
    _write(root / V2 / "repositories/team/app/_uploads/0f0e0d0c-0b0a-4908-8706-050403020100/data", b"partial")
    return {"config": config_digest, "layer": layer_digest, "manifest": manifest_digest}


def test_sound_root_passes(tmp_path: Path) -> None:
    digests = _sound_root(tmp_path)
    _write(tmp_path / V2 / "repositories/team/app/_manifests/tags/v2/current/.dockyard-1234.tmp", b"")
    report = check_layout(tmp_path)
    assert report.problems == []
    assert report.tags == {("team/app", "v1"): digests["manifest"]}
    assert report.blobs == set(digests.values())
    assert len(report.temp_files) == 1


def test_temp_trees_a_serving_registry_renames_meanwhile_are_not_walked_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged tree (a pull record, a new tag) may be renamed into place while the check walks:
    it is counted as a temp file and never listed, so its going cannot fail the walk."""
    _sound_root(tmp_path)
    _write(tmp_path / V2 / "repositories/team/app/.dockyard-5678.tmp/_dockyard/tags/v1/pulled", b"{}")
    scandir = os.scandir

    def renamed_meanwhile(path: Any) -> Any:
        if ".dockyard-" in os.fspath(path):
            raise FileNotFoundError(2, "renamed into place meanwhile", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", renamed_meanwhile)
    report = check_layout(tmp_path)
    assert report.problems == []
    assert report.temp_files == [tmp_path / V2 / "repositories/team/app/.dockyard-5678.tmp"]


def _damage(root: Path, digests: dict[str, str], kind: str) -> None:
    repository = root / V2 / "repositories/team/app"
    manifest_hex = digests["manifest"][7:]
    if kind == "empty-link":
        (repository / "_manifests/tags/v1/current/link").write_bytes(b"")
    elif kind == "torn-link":
        (repository / "_manifests/tags/v1/current/link").write_bytes(digests["manifest"][:30].encode())
    elif kind == "wrong-content":
        (root / V2 / "blobs/sha256" / manifest_hex[:2] / manifest_hex / "data").write_bytes(b"other")
    elif kind == "dangling-tag":
        _link(root, "team/app/_manifests/tags/v2/current", _digest(b"never pushed"))
    elif kind == "revision-without-content":
        digest = _digest(b"lost")
        _link(root, f"team/app/_manifests/revisions/sha256/{digest[7:]}", digest)
    elif kind == "layer-link-without-blob":
        digest = _digest(b"lost")
        _link(root, f"team/app/_layers/sha256/{digest[7:]}", digest)
    elif kind == "unlinked-reference":
        (repository / f"_layers/sha256/{digests['layer'][7:]}/link").unlink()
    elif kind == "link-names-other-digest":
        (repository / f"_layers/sha256/{digests['layer'][7:]}/link").write_bytes(digests["config"].encode())
    elif kind == "stray-file":
        _write(root / V2 / "blobs/sha256/zz/notes.txt", b"x")


@pytest.mark.parametrize(
    "kind",
    [
        "empty-link",
        "torn-link",
        "wrong-content",
        "dangling-tag",
        "revision-without-content",
        "layer-link-without-blob",
        "unlinked-reference",
        "link-names-other-digest",
        "stray-file",
    ],
)
def test_each_kind_of_damage_is_found(tmp_path: Path, kind: str) -> None:
    digests = _sound_root(tmp_path)
    _damage(tmp_path, digests, kind)
    assert check_layout(tmp_path).problems != []
