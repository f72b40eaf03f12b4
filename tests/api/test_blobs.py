"""Pulling, checking and deleting blobs (end-2, end-10), with HTTP ranges."""

from __future__ import annotations

import pytest

from .client import (
    RegistryClient,
    assert_blob_content,
    assert_empty_body,
    assert_error,
)
from .conftest import NewRepo
from .content import Content, blob

SIZE = 1000


@pytest.fixture
def pushed(client: RegistryClient, repo: str) -> Content:
    content = blob(SIZE)
    client.push_blob(repo, content)
    return content


def test_get_blob(client: RegistryClient, repo: str, pushed: Content) -> None:
    response = client.get(f"/v2/{repo}/blobs/{pushed.digest}")
    assert response.status_code == 200
    assert response.content == pushed.data
    assert response.headers["Docker-Content-Digest"] == pushed.digest
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "Content-Range" not in response.headers


def test_head_blob(client: RegistryClient, repo: str, pushed: Content) -> None:
    response = client.head(f"/v2/{repo}/blobs/{pushed.digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Docker-Content-Digest"] == pushed.digest
    assert response.headers["Content-Length"] == str(SIZE)


BLOB_HEADERS = (
    "Docker-Content-Digest",
    "ETag",
    "Cache-Control",
    "Accept-Ranges",
    "Content-Type",
    "Content-Length",
)


def test_head_answers_the_headers_get_does(client: RegistryClient, repo: str, pushed: Content) -> None:
    head = client.head(f"/v2/{repo}/blobs/{pushed.digest}")
    assert head.headers["Cache-Control"] == "max-age=31536000"
    assert head.headers["ETag"] == f'"{pushed.digest}"'
    assert head.headers["Docker-Content-Digest"] == pushed.digest
    assert head.headers["Content-Length"] == str(SIZE)
    got = client.get(f"/v2/{repo}/blobs/{pushed.digest}")
    if got.history:  # redirected to storage (S3), which answers with headers of its own
        return
    assert {name: head.headers.get(name) for name in BLOB_HEADERS} == {
        name: got.headers.get(name) for name in BLOB_HEADERS
    }


def test_conditional_head_with_etag(client: RegistryClient, repo: str, pushed: Content) -> None:
    response = client.head(
        f"/v2/{repo}/blobs/{pushed.digest}", headers={"If-None-Match": f'"{pushed.digest}"'}
    )
    assert response.status_code == 304
    assert response.headers["Docker-Content-Digest"] == pushed.digest
    assert "Content-Type" not in response.headers


def test_blob_is_scoped_to_its_repository(client: RegistryClient, pushed: Content, new_repo: NewRepo) -> None:
    other = new_repo()
    assert_error(client.get(f"/v2/{other}/blobs/{pushed.digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/{other}/blobs/{pushed.digest}"), 404, "BLOB_UNKNOWN")


def test_empty_blob(client: RegistryClient, repo: str) -> None:
    empty = Content(b"")
    client.push_blob(repo, empty)
    assert_blob_content(client, repo, empty)
    assert_error(
        client.get(f"/v2/{repo}/blobs/{empty.digest}", headers={"Range": "bytes=0-"}),
        416,
        "SIZE_INVALID",
    )


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=999-999", 999, 999),
        ("bytes=0-999", 0, 999),
        ("bytes=990-", 990, 999),  # open-ended
        ("bytes=0-", 0, 999),
        ("bytes=-10", 990, 999),  # suffix: the last 10 bytes
        ("bytes=-1", 999, 999),
        ("bytes=-5000", 0, 999),  # suffix longer than the blob: all of it
        ("bytes=995-2000", 995, 999),  # last position past the end is clamped
        ("bytes=" + "0" * 30 + "5-9", 5, 9),  # leading zeros: the digits' value counts
        ("bytes=10-" + "9" * 5000, 10, 999),  # past what Python turns into an int from text
        ("bytes=-" + "9" * 5000, 0, 999),
    ],
    ids=lambda value: value if not isinstance(value, str) or len(value) < 40 else value[:20] + "...",
)
def test_single_range_is_206_with_exact_bytes(
    client: RegistryClient, repo: str, pushed: Content, header: str, first: int, last: int
) -> None:
    response = client.get(f"/v2/{repo}/blobs/{pushed.digest}", headers={"Range": header})
    assert response.status_code == 206, response.text
    assert response.content == pushed.data[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert response.headers["Content-Length"] == str(last - first + 1)
    assert response.headers["Docker-Content-Digest"] == pushed.digest
    assert response.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # starts at the end
        "bytes=2000-3000",  # entirely past the end
        "bytes=" + "1" * 5000 + "-",
        "bytes=50-10",  # reversed
        "bytes=-0",  # empty suffix
        "bytes=-",
        "bytes=0-1,5-9",  # multiple ranges
        "bytes=0-10, 20-30",
        "items=0-5",  # unknown unit
        "bytes=abc",
        "bytes=1.5-2",
        "0-10",
    ],
    ids=lambda header: header if len(header) < 40 else header[:20] + "...",
)
def test_invalid_or_unsatisfiable_range_is_416(
    client: RegistryClient, repo: str, pushed: Content, header: str
) -> None:
    response = client.get(f"/v2/{repo}/blobs/{pushed.digest}", headers={"Range": header})
    assert_error(response, 416, "SIZE_INVALID")
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"


def test_range_on_unknown_blob_is_404(client: RegistryClient, repo: str) -> None:
    response = client.get(f"/v2/{repo}/blobs/{blob().digest}", headers={"Range": "bytes=0-1"})
    assert_error(response, 404, "BLOB_UNKNOWN")


def test_conditional_get_with_etag(client: RegistryClient, repo: str, pushed: Content) -> None:
    etag = client.head(f"/v2/{repo}/blobs/{pushed.digest}").headers["ETag"]
    assert etag == f'"{pushed.digest}"'
    response = client.get(f"/v2/{repo}/blobs/{pushed.digest}", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["Docker-Content-Digest"] == pushed.digest


def test_delete_blob_then_404(client: RegistryClient, repo: str, pushed: Content) -> None:
    response = client.delete(f"/v2/{repo}/blobs/{pushed.digest}")
    assert response.status_code == 202
    assert_empty_body(response)
    assert_error(client.head(f"/v2/{repo}/blobs/{pushed.digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/blobs/{pushed.digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/blobs/{pushed.digest}"), 404, "BLOB_UNKNOWN")


def test_delete_blob_leaves_other_repositories(
    client: RegistryClient, repo: str, pushed: Content, new_repo: NewRepo
) -> None:
    other = new_repo()
    client.push_blob(other, pushed)
    assert client.delete(f"/v2/{repo}/blobs/{pushed.digest}").status_code == 202
    assert_blob_content(client, other, pushed)


def test_delete_unknown_blob_is_404(client: RegistryClient, repo: str) -> None:
    assert_error(client.delete(f"/v2/{repo}/blobs/{blob().digest}"), 404, "BLOB_UNKNOWN")


def test_pushing_again_after_delete_restores_the_blob(
    client: RegistryClient, repo: str, pushed: Content
) -> None:
    assert client.delete(f"/v2/{repo}/blobs/{pushed.digest}").status_code == 202
    client.push_blob(repo, pushed)
    assert_blob_content(client, repo, pushed)


def test_ranges_across_read_chunks(client: RegistryClient, repo: str) -> None:
    """A blob larger than the registry's 1 MiB read size: ranges that start, end or straddle a
    chunk boundary still give exactly the bytes asked for."""
    mib = 1 << 20
    content = blob(2 * mib + 12345)
    client.push_blob(repo, content)
    assert_blob_content(client, repo, content)
    size = content.size
    for first, last in [(mib - 5, mib + 5), (mib, 2 * mib - 1), (1, size - 2), (2 * mib, size - 1)]:
        response = client.get(
            f"/v2/{repo}/blobs/{content.digest}", headers={"Range": f"bytes={first}-{last}"}
        )
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert response.content == content.data[first : last + 1]
    response = client.get(f"/v2/{repo}/blobs/{content.digest}", headers={"Range": f"bytes=-{mib + 1}"})
    assert response.status_code == 206
    assert response.content == content.data[-(mib + 1) :]
