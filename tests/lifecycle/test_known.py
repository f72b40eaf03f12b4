"""The record of what each manifest refers to, which spares the next run reading the manifests:
a usable record is used, and one that is torn, garbled or of another version is ignored and
replaced, never trusted."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bench.gc import build_store
from registry.lifecycle import known
from registry.lifecycle.collect import Options, garbage_collect
from registry.lifecycle.digests import raw
from registry.lifecycle.manifest_references import References
from registry.lifecycle.usage import collect_and_record, measure
from registry.references import Digest
from registry.storage import paths
from storage_drivers import FileInfo
from storage_drivers.filesystem import FilesystemDriver

ROOT = "docker/registry/v2"
A, B, C, D = (Digest.of(name.encode()) for name in ("a", "b", "c", "d"))
LONG = Digest.of(b"long", "sha512")
RECORD = known.Known(
    {
        raw(A): References(frozenset({raw(B), raw(LONG)}), frozenset(), None),
        raw(C): References(frozenset(), frozenset({raw(A)}), raw(D)),
        raw(D): References(),
    },
    {raw(A): 10, raw(B): 0, raw(LONG): 1 << 40},
)


def test_a_record_gives_back_what_it_was_written_with() -> None:
    assert known.decode(known.encode(RECORD)) == RECORD
    assert known.decode(known.encode(known.Known())) == known.Known()


def _signed(body: bytes) -> bytes:
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


@pytest.mark.parametrize(
    "damage",
    [
        lambda record: record[: len(record) // 2],  # torn
        lambda record: record[:-2] + bytes([record[-2] ^ 1]) + record[-1:],  # a flipped bit
        lambda record: b"",
        lambda record: b"\x00" * 64,
        lambda record: record.replace(b'"version":2', b'"version":3'),
        lambda record: _signed(record.partition(b"\n")[2].replace(b'"version":2', b'"version":3')),
        lambda record: _signed(record.partition(b"\n")[2].replace(b'"version":2', b'"version":1')),
        lambda record: _signed(b'{"version":2,"digests":{"sha256":"nothex"},"manifests":[[0,[],[],-1]]}'),
        lambda record: _signed(b'{"version":2,"digests":["sha256:' + b"ab" * 32 + b'"],"manifests":[]}'),
        lambda record: _signed(b'{"version":2,"digests":{"sha256":"' + b"ab" * 31 + b'"},"manifests":[]}'),
        lambda record: _signed(b'{"version":2,"digests":{"sha256":"' + b"ab " * 32 + b'"},"manifests":[]}'),
        lambda record: _signed(b'{"version":2,"digests":{"md5":""},"manifests":[]}'),
        lambda record: _signed(b'{"version":2,"digests":{},"manifests":[[0,[],[],-1]]}'),
        lambda record: _signed(b'{"version":2,"digests":{},"manifests":[]}'),
        lambda record: _signed(b'{"version":2,"digests":{},"manifests":[],"sizes":{"sha256":["ab",[1]]}}'),
        lambda record: _signed(b'{"version":2,"digests":{},"manifests":[],"sizes":{"md5":["",[]]}}'),
        lambda record: _signed(b'{"version":2,"digests":{},"manifests":[],"sizes":{"sha256":["zz",[]]}}'),
        lambda record: _signed(
            b'{"version":2,"digests":{},"manifests":[],"sizes":{"sha256":["' + b"ab" * 32 + b'",[-1]]}}'
        ),
        lambda record: _signed(
            b'{"version":2,"digests":{},"manifests":[],"sizes":{"sha256":["' + b"ab" * 32 + b'",[1,2]]}}'
        ),
        lambda record: _signed(b"[1, 2]"),
        lambda record: _signed(b"not json"),
    ],
)
def test_a_damaged_record_is_refused(damage: object) -> None:
    record = known.encode(RECORD)
    assert callable(damage)
    assert known.decode(damage(record)) is None


class _Reads(FilesystemDriver):
    """Records the manifests' blobs read."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.blobs_read: list[str] = []

    async def _get_many(self, paths_: Sequence[str]) -> list[bytes | None]:
        self.blobs_read += [path for path in paths_ if path.endswith("/data")]
        return await super()._get_many(paths_)


def _references(record: Path) -> dict[bytes, References]:
    decoded = known.decode(record.read_bytes())
    assert decoded is not None
    return decoded.references


async def _dry_run(driver: FilesystemDriver) -> list[str]:
    lines: list[str] = []
    await garbage_collect(driver, Options(dry_run=True, grace_period=0), lines.append)
    return lines


async def test_a_run_reads_only_the_manifests_the_last_run_did_not_record(tmp_path: Path) -> None:
    build_store(tmp_path, repositories=3)  # 27 manifests
    record = tmp_path / paths.gc_references().lstrip("/")
    first = _Reads(str(tmp_path))
    expected = await _dry_run(first)
    assert len(first.blobs_read) == 27
    assert len(_references(record)) == 27

    again = _Reads(str(tmp_path))
    assert await _dry_run(again) == expected
    assert again.blobs_read == []

    build_store(tmp_path / "more", repositories=4)  # one repository more, the same three before it
    added = tmp_path / "more" / ROOT / "repositories" / "gc" / "r-0003"
    added.rename(tmp_path / ROOT / "repositories" / "gc" / "r-0003")
    for blob in (tmp_path / "more" / ROOT / "blobs" / "sha256").glob("*/*"):
        target = tmp_path / ROOT / "blobs" / "sha256" / blob.parent.name / blob.name
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            blob.rename(target)
    grown = _Reads(str(tmp_path))
    assert len(await _dry_run(grown)) > len(expected)
    assert len(grown.blobs_read) == 9
    assert len(_references(record)) == 36


@pytest.mark.parametrize(
    "record_content",
    [b"garbage", None],
    ids=["garbage", "torn"],
)
async def test_a_damaged_record_is_ignored_and_replaced(tmp_path: Path, record_content: bytes | None) -> None:
    build_store(tmp_path, repositories=3)
    record = tmp_path / paths.gc_references().lstrip("/")
    expected = await _dry_run(FilesystemDriver(str(tmp_path)))
    good = record.read_bytes()
    record.write_bytes(record_content if record_content is not None else good[: len(good) - 100])

    driver = _Reads(str(tmp_path))
    assert await _dry_run(driver) == expected
    assert len(driver.blobs_read) == 27
    assert record.read_bytes() == good


async def test_a_recorded_manifest_whose_blob_is_gone_is_read(tmp_path: Path) -> None:
    """Missing content refers to nothing: the record must not keep its references alive."""
    build_store(tmp_path, repositories=1)
    driver = _Reads(str(tmp_path))
    await _dry_run(driver)
    revisions = tmp_path / ROOT / "repositories" / "gc" / "r-0000" / "_manifests" / "revisions" / "sha256"
    gone = sorted(revisions.iterdir())[0].name
    blob = tmp_path / ROOT / "blobs" / "sha256" / gone[:2] / gone
    (blob / "data").unlink()
    blob.rmdir()

    again = _Reads(str(tmp_path))
    await _dry_run(again)
    assert again.blobs_read == [f"/{ROOT}/blobs/sha256/{gone[:2]}/{gone}/data"]
    # The record may keep the entry (``known.worth_writing``), never to be trusted: every run reads it.
    if bytes.fromhex(gone) in _references(tmp_path / paths.gc_references().lstrip("/")):
        third = _Reads(str(tmp_path))
        await _dry_run(third)
        assert third.blobs_read == again.blobs_read


class _Stats(FilesystemDriver):
    """Records the blobs stat-ed."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.blobs_stated: list[str] = []

    async def _stat_many(self, paths_: Sequence[str]) -> list[FileInfo | None]:
        self.blobs_stated += [path for path in paths_ if path.endswith("/data")]
        return await super()._stat_many(paths_)


class _Stated(FilesystemDriver):
    """Records every path stat-ed."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.stated: list[str] = []

    async def _stat_many(self, paths_: Sequence[str]) -> list[FileInfo | None]:
        self.stated += paths_
        return await super()._stat_many(paths_)

    async def _stat(self, path: str) -> FileInfo:
        self.stated.append(path)
        return await super()._stat(path)


async def test_a_real_run_takes_the_last_push_from_revision_links_and_stats_no_tag_link(
    tmp_path: Path,
) -> None:
    """Every manifest push rewrites its revision link (its tags' links in the same write): the
    newest revision link is the last push, and tag links are not stat-ed for it."""
    build_store(tmp_path, repositories=2)
    repositories = tmp_path / paths.REPOSITORIES.lstrip("/") / "gc"
    links = sorted(repositories.rglob("link"))
    for link in links:
        os.utime(link, (1_700_000_000, 1_700_000_000))
    newest = next(link for link in links if "r-0000" in str(link) and "/revisions/" in str(link))
    os.utime(newest, (1_700_000_500, 1_700_000_500))
    ignored = next(link for link in links if "r-0001" in str(link) and "/tags/" in str(link))
    os.utime(ignored, (1_700_000_900, 1_700_000_900))  # a tag link alone: not a manifest push
    driver = _Stated(str(tmp_path))
    await collect_and_record(driver, Options(grace_period=0), lambda line: None)
    assert [path for path in driver.stated if "/_manifests/tags/" in path] == []
    assert any("/_manifests/revisions/" in path for path in driver.stated)
    usage = json.loads((tmp_path / paths.usage_record().lstrip("/")).read_bytes())
    last_push = {repository["name"]: repository["last_push"] for repository in usage["repositories"]}
    assert last_push == {"gc/r-0000": "2023-11-14T22:21:40Z", "gc/r-0001": "2023-11-14T22:13:20Z"}


async def test_delete_untagged_lists_tag_history_without_stating_it(tmp_path: Path) -> None:
    build_store(tmp_path, repositories=2)
    driver = _Stated(str(tmp_path))
    report = await garbage_collect(
        driver, Options(dry_run=True, delete_untagged=True, grace_period=0), lambda line: None
    )
    assert report.inventory is not None
    assert all(repository.tag_history for repository in report.inventory.repositories.values())
    assert [path for path in driver.stated if "/index/" in path] == []
    assert any("/_manifests/revisions/" in path for path in driver.stated)  # their times: compared


async def test_a_real_run_stats_only_the_blobs_whose_sizes_were_not_recorded(tmp_path: Path) -> None:
    """Usage figures need every blob's size; the record gives those it holds, and the plan still
    stats the blobs it deletes, for their times."""
    for store in ("measured", "recorded"):
        build_store(tmp_path / store, repositories=3)  # 60 blobs, 6 of them garbage
    measured = _Stats(str(tmp_path / "measured"))
    expected = await collect_and_record(measured, Options(grace_period=0), lambda line: None)
    assert len(measured.blobs_stated) == 60

    recorded = _Stats(str(tmp_path / "recorded"))
    await _dry_run(recorded)  # stats only the 6 it would delete: the record holds their sizes
    await _dry_run(recorded)  # finds the 6 in the record, stats them for their times again
    assert len(recorded.blobs_stated) == 12
    record = known.decode((tmp_path / "recorded" / paths.gc_references().lstrip("/")).read_bytes())
    assert record is not None
    assert len(record.sizes) == 6
    first = await collect_and_record(recorded, Options(grace_period=0), lambda line: None)
    assert len(recorded.blobs_stated) == 12 + 54 + 6  # the 54 not recorded, the 6 to delete
    assert list(first.removed.lines("deleted")) == list(expected.removed.lines("deleted"))

    build_store(tmp_path / "again", repositories=3)
    again = _Stats(str(tmp_path / "again"))
    (tmp_path / "again" / paths.gc_references().lstrip("/")).parent.mkdir(parents=True)
    (tmp_path / "again" / paths.gc_references().lstrip("/")).write_bytes(
        (tmp_path / "recorded" / paths.gc_references().lstrip("/")).read_bytes()
    )
    await collect_and_record(again, Options(grace_period=0), lambda line: None)
    assert len(again.blobs_stated) == 6  # every size recorded: only the blobs it deletes
    figures = [
        json.loads((tmp_path / store / paths.usage_record().lstrip("/")).read_bytes())
        for store in ("measured", "recorded", "again")
    ]
    for figure in figures:
        del figure["measured"]
        for repository in figure["repositories"]:
            del repository["last_push"]
    assert figures[0]["stored_bytes"] > 0
    assert figures[0] == figures[1] == figures[2]


async def test_a_record_is_rewritten_for_what_is_new_or_when_much_of_it_is_gone(tmp_path: Path) -> None:
    build_store(tmp_path, repositories=2)  # 18 manifests, 38 blobs: 56 entries
    record = tmp_path / paths.gc_references().lstrip("/")
    await _dry_run(FilesystemDriver(str(tmp_path)))
    written = record.read_bytes()
    first = known.decode(written)
    assert first is not None
    blobs = tmp_path / ROOT / "blobs" / "sha256"

    def remove_blobs(count: int) -> None:
        for data in sorted(blobs.glob("*/*/data"))[:count]:
            data.unlink()
            data.parent.rmdir()

    remove_blobs(3)  # 3 to 6 entries of 56 gone: kept as it is
    await _dry_run(FilesystemDriver(str(tmp_path)))
    assert record.read_bytes() == written
    remove_blobs(8)  # more than one in eight gone: rewritten without them
    await _dry_run(FilesystemDriver(str(tmp_path)))
    rewritten = known.decode(record.read_bytes())
    assert rewritten is not None
    assert len(rewritten.sizes) < len(first.sizes)

    build_store(tmp_path / "more", repositories=3)  # a repository more: its manifests recorded
    (tmp_path / "more" / ROOT / "repositories" / "gc" / "r-0002").rename(
        tmp_path / ROOT / "repositories" / "gc" / "r-0002"
    )
    for blob in (tmp_path / "more" / ROOT / "blobs" / "sha256").glob("*/*"):
        target = blobs / blob.parent.name / blob.name
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            blob.rename(target)
    await _dry_run(FilesystemDriver(str(tmp_path)))
    grown = known.decode(record.read_bytes())
    assert grown is not None
    assert len(grown.references) > len(rewritten.references)


async def test_the_usage_command_uses_the_record_and_measures_the_same(tmp_path: Path) -> None:
    build_store(tmp_path, repositories=3)
    before = _Stats(str(tmp_path))
    cold = await measure(before, record=False)
    assert len(before.blobs_stated) == 60
    await collect_and_record(before, Options(grace_period=3600), lambda line: None)  # removes nothing

    after = _Reads(str(tmp_path))
    warm = await measure(after, record=False)
    assert after.blobs_read == []
    assert replace(warm, measured=0) == replace(cold, measured=0)
