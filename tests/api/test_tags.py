"""Listing tags (end-8): lexical order, ``n``/``last`` pagination and ``Link`` headers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .client import RegistryClient, assert_error, media_type, next_link
from .conftest import NewRepo
from .content import blob

TAGS = [
    "0.1.2", "0.1.20", "0.1.3", "1", "10", "2", "Latest", "_internal", "a-b", "a.b", "a_b", "latest",
    "v1.0", "v1.0-rc1", "V2",
]  # fmt: skip
ORDERED = sorted(TAGS)  # byte order, as Go's sort.Strings


@pytest.fixture
def tagged(client: RegistryClient, repo: str) -> str:
    image = client.push_image(repo)
    client.push_manifest(repo, image.manifest.digest, image.manifest, params=[("tag", t) for t in TAGS])
    return repo


def tags_page(client: RegistryClient, url: str, params: dict[str, str] | None = None) -> httpx.Response:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    return response


def test_order_is_lexical() -> None:
    assert ORDERED.index("0.1.2") < ORDERED.index("0.1.20") < ORDERED.index("0.1.3")
    assert ORDERED.index("V2") < ORDERED.index("_internal") < ORDERED.index("a-b") < ORDERED.index("latest")


def test_list_all_tags(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list")
    assert response.json() == {"name": tagged, "tags": ORDERED}
    assert "Link" not in response.headers
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(response.content))


def test_head_of_the_list_answers_the_headers_get_does(client: RegistryClient, tagged: str) -> None:
    got = tags_page(client, f"/v2/{tagged}/tags/list?n=4")
    head = client.head(f"/v2/{tagged}/tags/list?n=4")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("Content-Type", "Content-Length", "Link"):
        assert head.headers.get(name) == got.headers.get(name), name
    assert got.headers["Link"]


@pytest.mark.parametrize("page_size", [1, 4, 5, 14])
def test_follow_link_to_the_end(client: RegistryClient, tagged: str, page_size: int) -> None:
    url: str | None = f"/v2/{tagged}/tags/list?n={page_size}"
    seen: list[str] = []
    pages = 0
    while url is not None:
        response = tags_page(client, url)
        page = response.json()["tags"]
        assert response.json()["name"] == tagged
        url = next_link(response)
        if url is not None:
            assert len(page) == page_size
            parts = urlsplit(url)
            assert parts.path == f"/v2/{tagged}/tags/list"
            assert parse_qs(parts.query) == {"n": [str(page_size)], "last": [page[-1]]}
        else:
            assert 0 < len(page) <= page_size
        seen += page
        pages += 1
    assert seen == ORDERED
    assert pages == -(-len(TAGS) // page_size)


def test_n_and_last(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"n": "3", "last": "0.1.20"})
    start = ORDERED.index("0.1.20") + 1
    assert response.json()["tags"] == ORDERED[start : start + 3]
    assert next_link(response) is not None


def test_last_without_n(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"last": "a_b"})
    assert response.json()["tags"] == [t for t in ORDERED if t > "a_b"]
    assert "Link" not in response.headers


def test_last_that_is_not_a_tag(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"n": "2", "last": "b"})
    assert response.json()["tags"] == [t for t in ORDERED if t > "b"][:2]


def test_last_after_every_tag_is_empty(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"n": "5", "last": ORDERED[-1]})
    assert response.json() == {"name": tagged, "tags": []}
    assert "Link" not in response.headers


def test_n_zero_is_empty_without_link(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"n": "0"})
    assert response.json() == {"name": tagged, "tags": []}
    assert "Link" not in response.headers


def test_n_above_the_count_returns_all_without_link(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"n": "1000"})
    assert response.json()["tags"] == ORDERED
    assert "Link" not in response.headers


def test_n_equal_to_the_count_has_no_link(client: RegistryClient, tagged: str) -> None:
    response = tags_page(client, f"/v2/{tagged}/tags/list", {"n": str(len(TAGS))})
    assert response.json()["tags"] == ORDERED
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10", " 3", "99999999999999999999"])
def test_invalid_n_is_400(client: RegistryClient, tagged: str, n: str) -> None:
    response = client.get(f"/v2/{tagged}/tags/list", params={"n": n})
    assert_error(response, 400, "PAGINATION_NUMBER_INVALID")


def test_unknown_repository_is_404_name_unknown(client: RegistryClient, repo: str) -> None:
    error = assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert repo in str(error.get("detail"))
    assert_error(client.get(f"/v2/{repo}/tags/list", params={"n": "0"}), 404, "NAME_UNKNOWN")


def test_repository_with_blobs_or_uploads_only_is_unknown(
    client: RegistryClient, repo: str, new_repo: NewRepo
) -> None:
    """No manifest was ever pushed: the repository is not in the catalog, nor has a tag list."""
    client.push_blob(repo, blob())
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    uploading = new_repo()
    client.start_upload(uploading)
    assert_error(client.get(f"/v2/{uploading}/tags/list"), 404, "NAME_UNKNOWN")


def test_repository_without_tags_lists_none(client: RegistryClient, repo: str) -> None:
    client.push_image(repo)  # pushed by digest: a repository with no tag
    response = tags_page(client, f"/v2/{repo}/tags/list")
    assert response.json() == {"name": repo, "tags": []}


def test_deleted_tag_is_not_listed(client: RegistryClient, tagged: str) -> None:
    assert client.delete(f"/v2/{tagged}/manifests/0.1.20").status_code == 202
    response = tags_page(client, f"/v2/{tagged}/tags/list")
    assert response.json()["tags"] == [t for t in ORDERED if t != "0.1.20"]


def test_head_tags_list(client: RegistryClient, tagged: str) -> None:
    response = client.head(f"/v2/{tagged}/tags/list")
    assert response.status_code == 200
    assert response.content == b""
