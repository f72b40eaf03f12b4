"""Names, tags, digests and upload ids: what parses, what is refused, and with which error."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.references import (
    HEX_LENGTHS,
    MAX_NAME_LENGTH,
    Digest,
    RepositoryName,
    Tag,
    UploadId,
    is_repository_name,
    new_hasher,
    parse_algorithm,
    parse_reference,
)

HEX64 = "0123456789abcdef" * 4
HEX128 = HEX64 * 2


def _refused(code: ErrorCode, parse: Callable[[str], object], value: str) -> None:
    with pytest.raises(RegistryError) as raised:
        parse(value)
    assert raised.value.code is code


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "library/ubuntu",
        "team/app/component",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "0",
        "9lives/x1",
        "blobs/manifests/tags",
        "a" * MAX_NAME_LENGTH,
        "/".join(["ab"] * 85),
    ],
)
def test_valid_repository_names(name: str) -> None:
    assert RepositoryName.parse(name) == name
    assert is_repository_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        ".",
        "a/..",
        "../a",
        "a/../b",
        "A",
        "Team/app",
        "a" * (MAX_NAME_LENGTH + 1),
        "-a",
        "a-",
        ".a",
        "a.",
        "_a",
        "a_",
        "a___b",
        "a..b",
        "a._b",
        "a/",
        "/a",
        "a//b",
        "a/-b",
        "a b",
        "a\x00",
        "a\n",
        "café",
        "a%2Fb",
        "a\\b",
        "_catalog",
    ],
)
def test_invalid_repository_names(name: str) -> None:
    assert not is_repository_name(name)
    _refused(ErrorCode.NAME_INVALID, RepositoryName.parse, name)


def test_invalid_name_detail_is_bounded() -> None:
    with pytest.raises(RegistryError) as raised:
        RepositoryName.parse("x" * 100_000)
    assert len(raised.value.detail["name"]) <= MAX_NAME_LENGTH + 1


@pytest.mark.parametrize(
    "tag", ["latest", "v1.0", "1.0.0-rc.1", "_private", "A_B-c.d", "0", "t" * 128, "sha256"]
)
def test_valid_tags(tag: str) -> None:
    assert Tag.parse(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["", "t" * 129, ".hidden", "-dash", "a/b", "a:b", "a b", "a*", "a+b", "a\x00", "a\n", "é", "..", "~x"],
)
def test_invalid_tags(tag: str) -> None:
    _refused(ErrorCode.TAG_INVALID, Tag.parse, tag)


@pytest.mark.parametrize(("algorithm", "hex_"), [("sha256", HEX64), ("sha512", HEX128)])
def test_valid_digests(algorithm: str, hex_: str) -> None:
    digest = Digest.parse(f"{algorithm}:{hex_}")
    assert (digest.algorithm, digest.hex) == (algorithm, hex_)
    assert str(digest) == f"{algorithm}:{hex_}"
    assert digest == Digest.parse(str(digest))
    assert len({digest, Digest.parse(str(digest))}) == 1


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        ":" + HEX64,
        "sha256:" + HEX64[:-1],
        "sha256:" + HEX64 + "0",
        "sha256:" + HEX64.upper(),
        "SHA256:" + HEX64,
        "sha256:" + "g" * 64,
        "sha512:" + HEX64,
        "sha256:" + HEX128,
        "md5:" + "0" * 32,
        "sha384:" + "0" * 96,
        "blake3:" + HEX64,
        "sha256:../../../etc/passwd",
        "sha256:" + HEX64 + "\n",
        "sha256:" + HEX64 + "/x",
        "sha256: " + HEX64,
        "sha256::" + HEX64,
        "sha256:" + "a" * 10_000,
    ],
)
def test_invalid_digests(value: str) -> None:
    _refused(ErrorCode.DIGEST_INVALID, Digest.parse, value)


@pytest.mark.parametrize("algorithm", sorted(HEX_LENGTHS))
def test_digest_of_content(algorithm: str) -> None:
    data = b"content"
    digest = Digest.of(data, algorithm)
    assert str(digest) == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert len(digest.hex) == HEX_LENGTHS[algorithm]
    hasher = new_hasher(algorithm)
    hasher.update(b"con")
    hasher.update(b"tent")
    assert hasher.hexdigest() == digest.hex


def test_algorithms() -> None:
    assert parse_algorithm("sha256") == "sha256"
    assert parse_algorithm("sha512") == "sha512"
    for value in ("md5", "sha1", "SHA256", "", "sha256 ", "../sha256"):
        _refused(ErrorCode.DIGEST_INVALID, parse_algorithm, value)


def test_references_are_digests_when_they_have_a_colon() -> None:
    assert parse_reference("latest") == Tag("latest")
    assert isinstance(parse_reference("latest"), Tag)
    assert parse_reference(f"sha256:{HEX64}") == Digest("sha256", HEX64)
    _refused(ErrorCode.DIGEST_INVALID, parse_reference, "v1:2")
    _refused(ErrorCode.TAG_INVALID, parse_reference, ".v1")


def test_upload_ids() -> None:
    value = "0f0e0d0c-0b0a-4908-8706-050403020100"
    assert UploadId.parse(value) == value
    for bad in (
        "",
        value.upper(),
        value + "0",
        value[:-1],
        "..",
        "../" + value,
        value.replace("-", ""),
        "x" * 36,
    ):
        _refused(ErrorCode.BLOB_UPLOAD_UNKNOWN, UploadId.parse, bad)
