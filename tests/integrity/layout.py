"""What must hold in a storage root at any moment, even right after a ``kill -9``.

Read straight from the filesystem, independently of the registry's code:
every blob's content hashes to its path, every link file is non-empty and names
the digest its path says, every tag points at a manifest revision of its
repository whose content exists, and every revision's content exists and its
referenced blobs are linked and present. In-flight temp files (``.dockyard-*``)
may be left behind by a kill; they are returned separately, since they must
merely stay invisible.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

LINK = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
TEMP_PREFIX = ".dockyard-"
NON_DISTRIBUTABLE = "nondistributable"


@dataclass
class LayoutReport:
    problems: list[str] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)
    blobs: set[str] = field(default_factory=set)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    """(repository, tag) -> the digest its current link holds."""
    revisions: set[tuple[str, str]] = field(default_factory=set)
    layers: set[tuple[str, str]] = field(default_factory=set)


def paths_below(top: Path) -> list[Path]:
    """Every file and directory below ``top``, as a serving registry changes them: a directory
    gone by the time it is listed (a temp tree renamed into place) is skipped (``os.walk``)."""
    found = []
    for directory, subdirectories, names in os.walk(top):
        found += [Path(directory, name) for name in (*subdirectories, *names)]
    return found


def _files_below(top: Path, report: LayoutReport) -> list[Path]:
    """The files below ``top``, sorted. In-flight temp files and trees (``.dockyard-*``) go to
    ``report.temp_files``, each once, and are not walked into: a serving registry renames them
    into place at any moment (a pull record written while this walks), and ``os.walk`` skips a
    directory gone by the time it is listed."""
    files: list[Path] = []
    for directory, subdirectories, names in os.walk(top):
        here = Path(directory)
        for name in [name for name in subdirectories if name.startswith(TEMP_PREFIX)]:
            subdirectories.remove(name)
            report.temp_files.append(here / name)
        for name in names:
            (report.temp_files if name.startswith(TEMP_PREFIX) else files).append(here / name)
    return sorted(files)


def _blob_path(base: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return base / "blobs" / algorithm / hex_[:2] / hex_ / "data"


def check_layout(root: Path) -> LayoutReport:
    base = root / "docker" / "registry" / "v2"
    report = LayoutReport()
    report.temp_files += sorted(root.glob(f"{TEMP_PREFIX}*"))  # small files are staged in the root
    _check_blobs(base, report)
    _check_repositories(base, report)
    return report


def _check_blobs(base: Path, report: LayoutReport) -> None:
    blobs = base / "blobs"
    if not blobs.exists():
        return
    for path in _files_below(blobs, report):
        parts = path.relative_to(blobs).parts
        if len(parts) != 4 or parts[3] != "data" or parts[0] not in {"sha256", "sha512"}:
            report.problems.append(f"unexpected file under blobs/: {path}")
            continue
        algorithm, prefix, hex_, _ = parts
        computed = hashlib.new(algorithm, path.read_bytes()).hexdigest()
        if computed != hex_ or prefix != hex_[:2]:
            report.problems.append(f"blob {path} holds content hashing to {algorithm}:{computed}")
            continue
        report.blobs.add(f"{algorithm}:{hex_}")


def _read_link(path: Path, report: LayoutReport) -> str | None:
    content = path.read_bytes()
    if not content:
        report.problems.append(f"empty link file {path}")
        return None
    text = content.decode("ascii", "replace")
    if not LINK.fullmatch(text):
        report.problems.append(f"link {path} holds {content[:80]!r}, not a digest")
        return None
    return text


def _check_repositories(base: Path, report: LayoutReport) -> None:
    repositories = base / "repositories"
    if not repositories.exists():
        return
    tag_links: list[tuple[str, str, str, Path]] = []
    for path in _files_below(repositories, report):
        parts = path.relative_to(repositories).parts
        split = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
        if split is None or split == 0:
            report.problems.append(f"file outside any repository's metadata: {path}")
            continue
        name, rest = "/".join(parts[:split]), parts[split:]
        if rest[0] == "_uploads":
            continue  # in-progress uploads are not visible content
        if rest[0] == "_dockyard":
            _check_json(path, report)
            continue
        if rest[-1] != "link":
            report.problems.append(f"unexpected file {path}")
            continue
        digest = _read_link(path, report)
        if digest is None:
            continue
        if rest[0] == "_layers" and len(rest) == 4:
            _expect_named(path, digest, rest[1], rest[2], report)
            report.layers.add((name, digest))
        elif rest[:2] == ("_manifests", "revisions") and len(rest) == 5:
            _expect_named(path, digest, rest[2], rest[3], report)
            report.revisions.add((name, digest))
        elif rest[:2] == ("_manifests", "tags") and rest[3:] == ("current", "link"):
            tag_links.append((name, rest[2], digest, path))
        elif rest[:2] == ("_manifests", "tags") and len(rest) == 7 and rest[3] == "index":
            _expect_named(path, digest, rest[4], rest[5], report)
        else:
            report.problems.append(f"unexpected link {path}")
    for name, digest in sorted(report.layers):
        if digest not in report.blobs:
            report.problems.append(f"{name}: layer link {digest} without blob content")
    for name, digest in sorted(report.revisions):
        _check_revision(base, name, digest, report)
    for name, tag, digest, path in tag_links:
        report.tags[(name, tag)] = digest
        if (name, digest) not in report.revisions:
            report.problems.append(f"{name}:{tag} ({path}) points at {digest}, not a revision of {name}")


def _expect_named(path: Path, digest: str, algorithm: str, hex_: str, report: LayoutReport) -> None:
    if digest != f"{algorithm}:{hex_}":
        report.problems.append(f"link {path} holds {digest}, its path says {algorithm}:{hex_}")


def _check_json(path: Path, report: LayoutReport) -> None:
    try:
        json.loads(path.read_bytes())
    except ValueError:
        report.problems.append(f"unparseable JSON in {path}")


def _check_revision(base: Path, name: str, digest: str, report: LayoutReport) -> None:
    if digest not in report.blobs:
        report.problems.append(f"{name}: manifest revision {digest} without content")
        return
    try:
        document = json.loads(_blob_path(base, digest).read_bytes())
    except ValueError:
        report.problems.append(f"{name}: manifest {digest} is not JSON")
        return
    blobs = [document["config"]] if isinstance(document.get("config"), dict) else []
    blobs += [
        layer
        for layer in document.get("layers", [])
        if not (NON_DISTRIBUTABLE in layer.get("mediaType", "") and layer.get("urls"))
    ]
    for blob in blobs:
        if (name, blob["digest"]) not in report.layers:
            report.problems.append(f"{name}: manifest {digest} references unlinked blob {blob['digest']}")
    for child in document.get("manifests", []):
        if (name, child["digest"]) not in report.revisions:
            report.problems.append(f"{name}: index {digest} lists {child['digest']}, not a revision")
