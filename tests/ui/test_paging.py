"""Repositories and tags are paged on the server, 50 to a page, searched before paging."""

from __future__ import annotations

import re

import httpx

from tests.support.images import random_image
from tests.support.pushing import push_content, push_manifest
from tests.support.registry import StartRegistry

NEXT = re.compile(r'href="([^"]*)">Next (?:page|tags)</a>')


def names_on(page: httpx.Response) -> list[str]:
    return re.findall(r'<li><a href="/ui/r/([^"]+)">', page.text)


def test_repositories_and_tags_come_in_pages(start_registry: StartRegistry) -> None:
    registry = start_registry()
    image = random_image(1, 1024)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        for number in range(60):
            push_content(client, f"paged/repo{number:02d}", "1.0", image)
        for number in range(55):
            push_manifest(
                client, "paged/repo00", f"t{number:02d}", image.manifest.data, image.manifest.media_type
            )
        first = client.get("/ui/")
        assert names_on(first) == [f"paged/repo{n:02d}" for n in range(50)]
        following = NEXT.search(first.text)
        assert following, first.text
        second = client.get(following.group(1).replace("&amp;", "&"))
        assert names_on(second) == [f"paged/repo{n:02d}" for n in range(50, 60)]
        assert NEXT.search(second.text) is None
        searched = client.get("/ui/", params={"q": "repo5"})
        assert names_on(searched) == [f"paged/repo{n:02d}" for n in range(50, 60)]
        tags = client.get("/ui/r/paged/repo00")
        shown = re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', tags.text)
        assert shown == ["1.0", *(f"t{n:02d}" for n in range(49))]
        more = NEXT.search(tags.text)
        assert more, tags.text
        rest = client.get("/ui/r/paged/repo00" + more.group(1).replace("&amp;", "&"))
        shown = re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', rest.text)
        assert shown == [f"t{n:02d}" for n in range(49, 55)]
