"""Blob upload sessions: monolithic, POST+PUT, chunked, streamed, status and cancel (end-4 .. end-6,
end-13, end-14)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from .client import (
    RegistryClient,
    assert_blob_content,
    assert_blob_created,
    assert_empty_body,
    assert_error,
    assert_upload_session,
)
from .conftest import NewRepo
from .content import Content, blob, digest_of

OCTETS = {"Content-Type": "application/octet-stream"}


def chunked(data: bytes, size: int = 7) -> Iterator[bytes]:
    """The body as a generator, so it goes out with ``Transfer-Encoding: chunked``."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def status(client: RegistryClient, location: str) -> int:
    """The upload's size by its status endpoint, which must answer 204 with the session headers."""
    response = client.get(location)
    assert response.status_code == 204, response.text
    received = response.headers["Range"]
    end = int(received.split("-", 1)[1])
    return 0 if end == 0 else end + 1


def test_post_starts_a_session(client: RegistryClient, repo: str) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert response.status_code == 202
    location = assert_upload_session(client, response, repo, 0)
    status_response = client.get(location)
    assert status_response.status_code == 204
    assert assert_upload_session(client, status_response, repo, 0) == location


def test_sessions_are_distinct(client: RegistryClient, repo: str) -> None:
    assert client.start_upload(repo) != client.start_upload(repo)


def test_monolithic_post_with_digest(client: RegistryClient, repo: str) -> None:
    content = blob(300)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": content.digest}, content=content.data, headers=OCTETS
    )
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_monolithic_post_with_wrong_digest_stores_nothing(client: RegistryClient, repo: str) -> None:
    content, claimed = blob(300), blob(300)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": claimed.digest}, content=content.data, headers=OCTETS
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.blob_status(repo, claimed.digest) == 404
    assert client.blob_status(repo, content.digest) == 404


def test_post_then_put(client: RegistryClient, repo: str) -> None:
    content = blob(500)
    location = client.start_upload(repo)
    response = client.put(location, params={"digest": content.digest}, content=content.data, headers=OCTETS)
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_chunked_upload_with_content_range(client: RegistryClient, repo: str) -> None:
    content = blob(25)
    location = client.start_upload(repo)
    for first, last in [(0, 9), (10, 19), (20, 24)]:
        response = client.patch(
            location,
            content=content.data[first : last + 1],
            headers={**OCTETS, "Content-Range": f"{first}-{last}"},
        )
        assert response.status_code == 202, response.text
        location = assert_upload_session(client, response, repo, last + 1)
    status_response = client.get(location)
    assert status_response.status_code == 204
    assert_upload_session(client, status_response, repo, 25)
    response = client.put(location, params={"digest": content.digest})
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_out_of_order_chunk_is_416_and_changes_nothing(client: RegistryClient, repo: str) -> None:
    content = blob(30)
    location = client.start_upload(repo)
    first = client.patch(location, content=content.data[:10], headers={"Content-Range": "0-9"})
    assert first.status_code == 202
    for bad_range in ["20-29", "5-14", "0-9", "11-20"]:
        first_byte, last_byte = (int(n) for n in bad_range.split("-"))
        response = client.patch(
            location,
            content=content.data[first_byte : last_byte + 1],
            headers={"Content-Range": bad_range},
        )
        assert_error(response, 416, "BLOB_UPLOAD_INVALID")
        assert response.headers["Range"] == "0-9"
        assert status(client, location) == 10
    response = client.patch(location, content=content.data[10:], headers={"Content-Range": "10-29"})
    assert response.status_code == 202
    assert_upload_session(client, response, repo, 30)
    assert_blob_created(client, client.put(location, params={"digest": content.digest}), repo, content.digest)
    assert_blob_content(client, repo, content)


def test_first_chunk_must_start_at_zero(client: RegistryClient, repo: str) -> None:
    location = client.start_upload(repo)
    response = client.patch(location, content=b"abcde", headers={"Content-Range": "1-5"})
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-0"
    assert status(client, location) == 0


def test_out_of_order_final_chunk_at_put_is_416(client: RegistryClient, repo: str) -> None:
    content = blob(20)
    location = client.start_upload(repo)
    assert (
        client.patch(location, content=content.data[:10], headers={"Content-Range": "0-9"}).status_code == 202
    )
    response = client.put(
        location,
        params={"digest": content.digest},
        content=content.data[12:],
        headers={"Content-Range": "12-19"},
    )
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-9"
    assert status(client, location) == 10
    assert client.blob_status(repo, content.digest) == 404
    response = client.put(
        location,
        params={"digest": content.digest},
        content=content.data[10:],
        headers={"Content-Range": "10-19"},
    )
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_streamed_patch_without_content_range(client: RegistryClient, repo: str) -> None:
    content = blob(100)
    location = client.start_upload(repo)
    response = client.patch(location, content=chunked(content.data[:60]), headers=OCTETS)
    assert response.status_code == 202, response.text
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    location = assert_upload_session(client, response, repo, 60)
    response = client.patch(location, content=chunked(content.data[60:]), headers=OCTETS)
    assert response.status_code == 202
    location = assert_upload_session(client, response, repo, 100)
    assert_blob_created(client, client.put(location, params={"digest": content.digest}), repo, content.digest)
    assert_blob_content(client, repo, content)


def test_put_with_final_chunk_and_content_range(client: RegistryClient, repo: str) -> None:
    content = blob(40)
    location = client.start_upload(repo)
    response = client.patch(location, content=content.data[:25], headers={"Content-Range": "0-24"})
    location = assert_upload_session(client, response, repo, 25)
    response = client.put(
        location,
        params={"digest": content.digest},
        content=content.data[25:],
        headers={**OCTETS, "Content-Range": "25-39"},
    )
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_put_with_final_chunk_without_content_range(client: RegistryClient, repo: str) -> None:
    content = blob(40)
    location = client.start_upload(repo)
    response = client.patch(location, content=chunked(content.data[:16]))
    location = assert_upload_session(client, response, repo, 16)
    response = client.put(
        location, params={"digest": content.digest}, content=content.data[16:], headers=OCTETS
    )
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_put_streamed_final_chunk(client: RegistryClient, repo: str) -> None:
    content = blob(40)
    location = client.start_upload(repo)
    response = client.put(location, params={"digest": content.digest}, content=chunked(content.data))
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_empty_patch_changes_nothing(client: RegistryClient, repo: str) -> None:
    location = client.start_upload(repo)
    assert client.patch(location, content=b"abc").status_code == 202
    response = client.patch(location, content=b"")
    assert response.status_code == 202
    assert_upload_session(client, response, repo, 3)


def test_chunk_length_must_match_content_range(client: RegistryClient, repo: str) -> None:
    location = client.start_upload(repo)
    response = client.patch(location, content=b"abcdef", headers={"Content-Range": "0-9"})
    assert_error(response, 400, "SIZE_INVALID")
    assert status(client, location) == 0


def test_upload_status_is_204_with_range(client: RegistryClient, repo: str) -> None:
    location = client.start_upload(repo)
    client.patch(location, content=b"x" * 17)
    response = client.get(location)
    assert response.status_code == 204
    assert_upload_session(client, response, repo, 17)


def test_cancel_upload_then_404(client: RegistryClient, repo: str) -> None:
    content = blob(10)
    location = client.start_upload(repo)
    client.patch(location, content=content.data)
    response = client.delete(location)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(location, content=b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(location, params={"digest": content.digest}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert client.blob_status(repo, content.digest) == 404


def test_wrong_digest_at_put_discards_the_upload(client: RegistryClient, repo: str) -> None:
    content, claimed = blob(50), blob(50)
    location = client.start_upload(repo)
    client.patch(location, content=content.data)
    response = client.put(location, params={"digest": claimed.digest})
    error = assert_error(response, 400, "DIGEST_INVALID")
    assert claimed.digest in str(error.get("detail"))
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert client.blob_status(repo, claimed.digest) == 404
    assert client.blob_status(repo, content.digest) == 404


def test_put_without_digest_is_400_and_keeps_the_upload(client: RegistryClient, repo: str) -> None:
    content = blob(12)
    location = client.start_upload(repo)
    client.patch(location, content=content.data)
    assert_error(client.put(location), 400, "DIGEST_INVALID")
    assert status(client, location) == 12
    assert_blob_created(client, client.put(location, params={"digest": content.digest}), repo, content.digest)


def test_digest_algorithm_sha512(client: RegistryClient, repo: str) -> None:
    content = blob(64, algorithm="sha512")
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest-algorithm": "sha512"})
    assert response.status_code == 202
    location = assert_upload_session(client, response, repo, 0)
    response = client.patch(location, content=content.data, headers={"Content-Range": "0-63"})
    location = assert_upload_session(client, response, repo, 64)
    response = client.put(location, params={"digest": content.digest})
    assert_blob_created(client, response, repo, content.digest)
    assert content.digest.startswith("sha512:")
    assert_blob_content(client, repo, content)
    assert client.blob_status(repo, digest_of(content.data)) == 404


def test_unsupported_digest_algorithm_is_400(client: RegistryClient, repo: str) -> None:
    for algorithm in ["md5", "sha384", "SHA256", ""]:
        response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest-algorithm": algorithm})
        assert_error(response, 400, "DIGEST_INVALID")


def test_upload_of_an_existing_blob_succeeds(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    content = blob(33)
    other = new_repo()
    client.push_blob(other, content)
    location = client.start_upload(repo)
    response = client.put(location, params={"digest": content.digest}, content=content.data)
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)
    assert_blob_content(client, other, content)


def test_upload_belongs_to_its_repository(client: RegistryClient, repo: str, new_repo: NewRepo) -> None:
    location = client.start_upload(repo)
    elsewhere = location.replace(f"/v2/{repo}/", f"/v2/{new_repo()}/")
    assert_error(client.get(elsewhere), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(elsewhere, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert status(client, location) == 0


def test_chunks_on_separate_connections(client: RegistryClient, repo: str) -> None:
    """Each chunk on a new connection, so the registry's workers share the session."""
    content = blob(3000)
    location = client.start_upload(repo)
    for first in range(0, 3000, 500):
        with RegistryClient(client.base_url) as fresh:
            response = fresh.patch(
                location,
                content=content.data[first : first + 500],
                headers={"Content-Range": f"{first}-{first + 499}"},
            )
        assert response.status_code == 202, response.text
        assert_empty_body(response)
        assert response.headers["Range"] == f"0-{first + 499}"
    assert_blob_created(client, client.put(location, params={"digest": content.digest}), repo, content.digest)
    assert_blob_content(client, repo, content)


def test_uploading_a_blob_the_repository_holds_again(client: RegistryClient, repo: str) -> None:
    content = Content(b"pushed twice " + blob(8).data)
    client.push_blob(repo, content)
    location = client.start_upload(repo)
    client.patch(location, content=content.data)
    assert_blob_created(client, client.put(location, params={"digest": content.digest}), repo, content.digest)
    assert_blob_content(client, repo, content)


def test_large_upload_in_unaligned_chunks(client: RegistryClient, repo: str) -> None:
    """Chunks that do not line up with the registry's 1 MiB write and hash batches."""
    content = blob((5 << 20) // 2 + 3, algorithm="sha512")
    location = client.start_upload(repo, **{"digest-algorithm": "sha512"})
    cuts = [0, 1, (1 << 20) + 7, (2 << 20) - 1, content.size - 2]
    for first, end in itertools.pairwise(cuts):
        response = client.patch(
            location, content=content.data[first:end], headers={"Content-Range": f"{first}-{end - 1}"}
        )
        location = assert_upload_session(client, response, repo, end)
    response = client.put(
        location, params={"digest": content.digest}, content=chunked(content.data[cuts[-1] :])
    )
    assert_blob_created(client, response, repo, content.digest)
    assert_blob_content(client, repo, content)


def test_large_streamed_upload(client: RegistryClient, repo: str) -> None:
    content = blob((3 << 20) + 1)
    location = client.start_upload(repo)
    response = client.patch(location, content=chunked(content.data, 100_000))
    location = assert_upload_session(client, response, repo, content.size)
    assert_blob_created(client, client.put(location, params={"digest": content.digest}), repo, content.digest)
    assert_blob_content(client, repo, content)
