"""Tags: names pointing at manifest digests, listed in lexical order, one page at a time."""

from __future__ import annotations

from registry.errors import ErrorCode
from registry.references import Digest
from registry.storage import Storage, paths
from tests.support.images import random_image

from .recording import RecordingDriver, put_image, raises, repository, tag

APP = repository("team/app")
FIRST = Digest.of(b"first manifest")
SECOND = Digest.of(b"second manifest")


async def test_a_tag_resolves_to_the_digest_it_last_pointed_at(storage: Storage) -> None:
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.tags.resolve(APP, tag("v1"))
    await storage.tags.tag(APP, tag("v1"), FIRST)
    assert await storage.tags.resolve(APP, tag("v1")) == FIRST
    await storage.tags.tag(APP, tag("v1"), SECOND)
    assert await storage.tags.resolve(APP, tag("v1")) == SECOND


async def test_the_current_link_is_written_before_the_history(
    storage: Storage, driver: RecordingDriver
) -> None:
    await storage.tags.tag(APP, tag("v1"), FIRST)
    assert driver.written == [
        paths.tag_current_link(APP, tag("v1")),
        paths.tag_index_link(APP, tag("v1"), FIRST),
    ]


async def test_untag_removes_the_tag_and_refuses_an_unknown_one(storage: Storage) -> None:
    await storage.tags.tag(APP, tag("v1"), FIRST)
    await storage.tags.tag(APP, tag("v2"), FIRST)
    await storage.tags.untag(APP, tag("v1"))
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.tags.resolve(APP, tag("v1"))
    assert await storage.tags.all_names(APP) == ["v2"]
    with raises(ErrorCode.MANIFEST_UNKNOWN):
        await storage.tags.untag(APP, tag("v1"))


async def test_names_are_sorted_and_foreign_entries_skipped(
    storage: Storage, driver: RecordingDriver
) -> None:
    for name in ("b", "a", "B", "a-1", "a.1", "_a"):
        await storage.tags.tag(APP, tag(name), FIRST)
    await driver.put_content(f"{paths.tags(APP)}/.not-a-tag/current/link", str(FIRST).encode())
    assert await storage.tags.all_names(APP) == ["B", "_a", "a", "a-1", "a.1", "b"]


async def test_a_repository_never_pushed_to_is_unknown_and_one_without_tags_is_empty(
    storage: Storage,
) -> None:
    with raises(ErrorCode.NAME_UNKNOWN):
        await storage.tags.all_names(APP)
    await put_image(storage, APP, random_image(layers=1, layer_size=64))  # pushed by digest only
    assert await storage.tags.all_names(APP) == []


async def test_pages_follow_each_other_after_last(storage: Storage) -> None:
    names = [f"t{number:02}" for number in range(7)]
    for name in names:
        await storage.tags.tag(APP, tag(name), FIRST)
    assert await storage.tags.page(APP, None, None) == (names, False)
    assert await storage.tags.page(APP, 3, None) == (names[:3], True)
    assert await storage.tags.page(APP, 3, "t02") == (names[3:6], True)
    assert await storage.tags.page(APP, 3, "t03") == (names[4:7], False)
    assert await storage.tags.page(APP, 3, "t025") == (names[3:6], True)  # ``last`` need not exist
    assert await storage.tags.page(APP, 3, "t06") == ([], False)
    assert await storage.tags.page(APP, 0, None) == ([], True)


async def test_pointing_at_lists_the_tags_whose_current_target_is_the_digest(storage: Storage) -> None:
    await storage.tags.tag(APP, tag("v1"), FIRST)
    await storage.tags.tag(APP, tag("latest"), FIRST)
    await storage.tags.tag(APP, tag("v2"), SECOND)
    await storage.tags.tag(APP, tag("v2"), FIRST)
    await storage.tags.tag(APP, tag("v2"), SECOND)  # pointed at FIRST once: history does not count
    assert await storage.tags.pointing_at(APP, FIRST) == ["latest", "v1"]
    assert await storage.tags.pointing_at(APP, SECOND) == ["v2"]
    assert await storage.tags.pointing_at(APP, Digest.of(b"untagged")) == []
