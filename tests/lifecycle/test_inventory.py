"""The mark's two ways of finding what is stored see the same store: on the filesystem it lists
names and stats the files they must hold; where listings carry sizes and times (S3, in memory)
it walks. Both must find every object of the layout and nothing else: an object the mark misses
is one whose references the sweep deletes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.gc import blob_key, build_store, store_objects
from registry.lifecycle import forks
from registry.lifecycle import inventory as inventory_module
from registry.lifecycle.digests import from_raw, raw
from registry.lifecycle.inventory import Inventory, Stat, take_inventory
from registry.lifecycle.known import Known
from registry.lifecycle.manifest_references import References
from registry.lifecycle.mark import plan, plan_stating
from registry.references import Digest
from registry.storage import paths
from storage_drivers import FileInfo, StorageError
from storage_drivers.filesystem import FilesystemDriver
from storage_drivers.inmemory import InMemoryDriver

ROOT = "docker/registry/v2"
SUBJECT = Digest.of(b"subject")
REFERRER = Digest.of(b"referrer")
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(SUBJECT), "size": 1}
        ],
    }
).encode()
INDEX_DIGEST = Digest.of(INDEX)


def extra_objects() -> list[tuple[str, bytes]]:
    """Beyond what bench.gc writes: nested repositories, a repository with only layer links, a
    referrers index, an upload, an index manifest, a sha512 blob, and files the layout never
    writes (which the mark must ignore)."""
    team = f"{ROOT}/repositories/team"
    link = str(INDEX_DIGEST).encode()
    return [
        (blob_key(str(INDEX_DIGEST)), INDEX),
        (f"{team}/_manifests/revisions/sha256/{INDEX_DIGEST.hex}/link", link),
        (f"{team}/_manifests/tags/latest/current/link", link),
        (f"{team}/_manifests/tags/latest/index/sha256/{INDEX_DIGEST.hex}/link", link),
        (f"{team}/app/_manifests/tags/v1/current/link", link),
        (f"{team}/app/_layers/sha256/{SUBJECT.hex}/link", str(SUBJECT).encode()),
        (f"{team}/app/_dockyard/referrers/sha256/{SUBJECT.hex}/sha256/{REFERRER.hex}", b"{}"),
        (f"{team}/app/_uploads/0f8e3c52-0000-4000-8000-000000000000/data", b"partial"),
        (f"{ROOT}/repositories/only-layers/_layers/sha256/{SUBJECT.hex}/link", str(SUBJECT).encode()),
        (f"{ROOT}/blobs/sha512/ab/{'ab' * 64}/data", b"sha512 content"),
        (f"{ROOT}/blobs/sha256/zz/not-a-digest/data", b"foreign"),
        (f"{ROOT}/repositories/team/app/_layers/sha256/{SUBJECT.hex}/other", b"foreign"),
        (f"{ROOT}/repositories/Upper/_manifests/tags/x/current/link", link),
        (f"{ROOT}/blobs/sha256/00/{'ab' * 32}/data", b"under another prefix"),
        (f"{team}/_manifests/tags/.hidden/current/link", link),
        (f"{team}/_manifests/revisions/sha256/{'AB' * 32}/link", link),
    ]


def summary(inventory: Inventory) -> dict[str, Any]:
    """Everything but times (the two stores were written at different moments)."""
    return {
        "blobs": {str(d): size for d, (size, _) in inventory.blobs.items()},
        "manifests": {str(from_raw(d)): references for d, references in inventory.manifests.items()},
        "repositories": {
            name: {
                "revisions": sorted(map(str, repository.revisions)),
                "tag_links": sorted(repository.tag_links),
                "tags": {tag: str(d) for tag, d in repository.tags.items()},
                "history": sorted((tag, str(d)) for tag, d in repository.tag_history),
                "layers": sorted(map(str, repository.layers)),
                "referrers": sorted((str(s), str(r)) for s, r in repository.referrer_entries),
                "listed": repository.listed,
            }
            for name, repository in inventory.repositories.items()
        },
    }


async def stores(tmp_path: Path) -> tuple[FilesystemDriver, InMemoryDriver]:
    """The same objects on disk and in memory."""
    on_disk = FilesystemDriver(str(tmp_path))
    in_memory = InMemoryDriver()
    for key, content in [*store_objects(repositories=3), *extra_objects()]:
        await on_disk.put_content(f"/{key}", content)
        await in_memory.put_content(f"/{key}", content)
    return on_disk, in_memory


async def test_listing_and_stat_finds_what_a_walk_finds(tmp_path: Path) -> None:
    on_disk, in_memory = await stores(tmp_path)
    (tmp_path / ROOT / "repositories" / "empty" / "_manifests").mkdir(parents=True)  # listed, nothing in it
    assert not on_disk.listing_carries_stats
    assert in_memory.listing_carries_stats

    scanned = summary(await take_inventory(on_disk))
    walked = summary(await take_inventory(in_memory))

    assert scanned["repositories"].pop("empty") == {
        "revisions": [],
        "tag_links": [],
        "tags": {},
        "history": [],
        "layers": [],
        "referrers": [],
        "listed": True,
    }
    assert scanned == walked
    assert len(scanned["blobs"]) == 3 * 20 + 2  # bench.gc's 20 blobs a repository, the index, sha512
    app = scanned["repositories"]["team/app"]
    assert app["tags"] == {"v1": str(INDEX_DIGEST)}
    assert app["referrers"] == [(str(SUBJECT), str(REFERRER))]
    assert app["listed"] is True
    assert scanned["repositories"]["only-layers"]["listed"] is False
    assert "Upper" not in scanned["repositories"]
    assert scanned["manifests"][str(INDEX_DIGEST)].children == frozenset({raw(SUBJECT)})


async def test_a_scan_without_tag_history_lists_no_index_and_cannot_delete_untagged(tmp_path: Path) -> None:
    on_disk, in_memory = await stores(tmp_path)
    listed: list[str] = []
    list_many = on_disk.list_many

    async def recording(paths: Sequence[str]) -> list[list[str] | None]:
        listed.extend(paths)
        return await list_many(paths)

    on_disk.list_many = recording  # type: ignore[method-assign]
    without = await take_inventory(on_disk, tag_targets=False, tag_history=False)

    assert listed
    assert not [directory for directory in listed if "/index" in directory]
    walked = summary(await take_inventory(in_memory, tag_targets=False))
    for repository in walked["repositories"].values():
        repository["history"] = []
    assert summary(without) == walked
    plan(without, delete_untagged=False, cutoff=float("inf"))
    with pytest.raises(ValueError, match="history"):
        plan(without, delete_untagged=True, cutoff=float("inf"))


async def test_a_scan_that_stats_nothing_plans_what_a_full_scan_plans(tmp_path: Path) -> None:
    """Unstated files are young until the plan stats what it needs: the unmarked blobs (their
    sizes and times) and the layer links to them, a fraction of the store."""
    on_disk, _ = await stores(tmp_path)
    stated: list[str] = []
    stat_many = on_disk.stat_many

    async def recording(paths: Sequence[str]) -> list[Any]:
        stated.extend(paths)
        return await stat_many(paths)

    cutoff = time.time() + 60  # everything is old enough
    full = plan(await take_inventory(on_disk, tag_targets=False, tag_history=False), False, cutoff)
    on_disk.stat_many = recording  # type: ignore[method-assign]
    lazy = await take_inventory(on_disk, tag_targets=False, tag_history=False, stat=Stat(0))
    with pytest.raises(ValueError, match="plan_stating"):
        plan(lazy, delete_untagged=False, cutoff=cutoff)
    assert not stated
    planned = await plan_stating(on_disk, lazy, False, cutoff)

    assert list(planned.lines("deleted")) == list(full.lines("deleted"))
    assert planned.blobs == full.blobs
    assert planned.blobs
    assert planned.layers
    assert len(stated) < len(full.marked)
    assert set(stated) >= {paths.blob_data(d) for d in full.blobs}


class _CountingDriver(FilesystemDriver):
    """Counts the batch calls in flight at once."""

    def __init__(self, root: str, in_flight: int) -> None:
        super().__init__(root)
        self.batches_in_flight = in_flight
        self.now = 0
        self.most = 0

    async def _counted(self, call: Any, paths: Sequence[str]) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.002)  # room for the others to start
            return await call(paths)
        finally:
            self.now -= 1

    async def _list_many(self, paths: Sequence[str]) -> list[list[str] | None]:
        return await self._counted(super()._list_many, paths)  # type: ignore[no-any-return]

    async def _stat_many(self, paths: Sequence[str]) -> list[FileInfo | None]:
        return await self._counted(super()._stat_many, paths)  # type: ignore[no-any-return]

    async def _get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return await self._counted(super()._get_many, paths)  # type: ignore[no-any-return]


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_the_scan_keeps_as_many_batches_in_flight_as_the_driver_says(
    tmp_path: Path, in_flight: int
) -> None:
    build_store(tmp_path, repositories=100)  # levels of 100 directories, 900 manifests: many batches
    driver = _CountingDriver(str(tmp_path), in_flight)
    inventory = await take_inventory(driver)
    assert len(inventory.manifests) == 900
    assert driver.most == in_flight


def test_the_filesystem_keeps_fewer_batches_in_flight_than_remote_storage() -> None:
    assert FilesystemDriver.batches_in_flight < InMemoryDriver.batches_in_flight


def everything(inventory: Inventory) -> dict[str, Any]:
    """``summary`` with the times and the foreign names: both scans read the same files."""
    found = summary(inventory)
    found["blob_times"] = {str(d): modified for d, (_, modified) in inventory.blobs.items()}
    for name, repository in inventory.repositories.items():
        found["repositories"][name]["times"] = (
            {str(d): modified for d, modified in repository.revisions.items()},
            {str(d): modified for d, modified in repository.layers.items()},
            dict(repository.tag_links),
        )
    found["foreign"] = sorted(inventory.foreign)
    return found


@pytest.mark.parametrize(("split_from", "workers"), [(2, 2), (3, 3), (8, 2), (40, 3)])
@pytest.mark.parametrize("stat", [Stat.ALL, Stat(0)])
async def test_a_scan_split_among_forked_workers_finds_what_one_scan_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split_from: int, workers: int, stat: Stat
) -> None:
    """Split at different levels (the blob and repository trees, the repositories, their
    manifests and links), in shares scanned by this process and forked children: the result
    is the single scan's, times and foreign names included, so no share is lost or doubled."""
    for key, content in [*store_objects(repositories=12), *extra_objects()]:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(content)
    (tmp_path / ROOT / "repositories" / "empty" / "_manifests").mkdir(parents=True)
    driver = FilesystemDriver(str(tmp_path))
    assert driver.lists_in_forks
    one = everything(await take_inventory(driver, stat=stat))

    forked: list[int] = []
    start = forks.start

    def counted(work: Callable[[], bytes]) -> forks.Child:
        child = start(work)
        forked.append(child.pid)
        return child

    monkeypatch.setattr(forks, "start", counted)
    monkeypatch.setattr(inventory_module, "SPLIT_FROM", split_from)
    split = everything(await take_inventory(driver, stat=stat, workers=workers))

    assert len(forked) == workers - 1
    assert split == one
    assert len(one["blobs"]) == 12 * 20 + 2
    assert one["foreign"]
    assert one["repositories"]["team/app"]["referrers"] == [(str(SUBJECT), str(REFERRER))]


@pytest.mark.parametrize("stat", [Stat(0), Stat.BLOBS])
async def test_the_last_runs_findings_are_recalled_once_while_forked_workers_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stat: Stat
) -> None:
    """Recalled while the children scan (or, when the scan needs the recorded sizes, before
    it), and still in time for the manifests: a recalled manifest is not read again. A command
    held up meanwhile leaves the chunks to the children, and the split scan still finds what
    one scan finds."""
    build_store(tmp_path, repositories=12)
    driver = FilesystemDriver(str(tmp_path))
    one = everything(await take_inventory(driver, stat=stat))
    read = (await take_inventory(driver)).manifests
    manifest = next(iter(read))
    recorded = References(blobs=frozenset({b"recalled"}))
    recalls: list[int] = []

    async def recall() -> Known:
        recalls.append(os.getpid())
        await asyncio.sleep(0.3)  # the command held up: the children take the chunks meanwhile
        return Known({manifest: recorded})

    monkeypatch.setattr(inventory_module, "SPLIT_FROM", 8)
    split = await take_inventory(driver, stat=stat, recall=recall, workers=3)

    assert recalls == [os.getpid()]
    assert split.manifests[manifest] is recorded
    split.manifests[manifest] = read[manifest]
    assert everything(split) == one


async def test_a_scan_of_one_worker_or_a_small_store_forks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_store(tmp_path, repositories=1)  # levels of 20 directories at most
    forked: list[Callable[[], bytes]] = []
    monkeypatch.setattr(forks, "start", forked.append)
    driver = FilesystemDriver(str(tmp_path))
    assert len((await take_inventory(driver, workers=4)).manifests) == 9
    monkeypatch.setattr(inventory_module, "SPLIT_FROM", 2)
    assert len((await take_inventory(driver, workers=1)).manifests) == 9
    assert not forked


async def test_a_forked_share_that_fails_or_dies_fails_the_wait() -> None:
    def failing() -> bytes:
        raise OSError("the listing failed")

    with pytest.raises(StorageError, match="OSError: the listing failed"):
        await forks.result(forks.start(failing))

    def dying() -> bytes:
        os.kill(os.getpid(), signal.SIGKILL)
        return b"never"

    with pytest.raises(StorageError, match="wait status"):
        await forks.result(forks.start(dying))
    assert await forks.result(forks.start(lambda: b"found")) == b"found"


@pytest.mark.parametrize("workers", [1, 3])
async def test_blobs_are_stat_ed_after_the_scan_only_where_the_record_has_no_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A scan that needs every size lists the blobs, then stats only those the last run's record
    does not size: the recorded sizes are taken as they are (here wrong on purpose, so a stat
    would show), the others come from their files, and a blob whose data went before its stat
    is not found."""
    build_store(tmp_path, repositories=12)
    driver = FilesystemDriver(str(tmp_path))
    truth = await take_inventory(driver)
    keys = [key for key, _, _ in truth.blobs.rows()]
    recorded = {key: size + 1000 for key, size, _ in truth.blobs.rows() if key[0] % 2}
    unsized = [key for key in keys if key not in recorded]
    vanished = unsized.pop()
    stated: list[str] = []
    stat_many = driver.stat_many

    async def counted(files: list[str]) -> list[FileInfo | None]:
        stated.extend(files)
        return await stat_many(files)

    async def recall() -> Known:
        (tmp_path / paths.blob_data(from_raw(vanished)).lstrip("/")).unlink()
        return Known({}, recorded)

    monkeypatch.setattr(driver, "stat_many", counted)
    monkeypatch.setattr(inventory_module, "SPLIT_FROM", 8)
    found = await take_inventory(driver, stat=Stat.BLOBS, recall=recall, workers=workers)

    assert recorded
    assert unsized
    assert sorted(file for file in stated if "/blobs/" in file) == sorted(
        paths.blob_data(from_raw(key)) for key in [*unsized, vanished]
    )
    assert not found.blobs.holds_raw(vanished)
    assert {key: size for key, size, _ in found.blobs.rows()} == {
        key: recorded.get(key, size) for key, size, _ in truth.blobs.rows() if key != vanished
    }
    times = {key: modified for key, _, modified in found.blobs.rows()}
    assert all(times[key] == inventory_module.UNSTATED for key in recorded)
    assert all(times[key] == modified for key, _, modified in truth.blobs.rows() if key in unsized)
