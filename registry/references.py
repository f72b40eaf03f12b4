"""Names, tags, digests and upload ids, parsed once into value types.

Only these types reach the storage layer, so a storage path can never be built
from unchecked input: a RepositoryName cannot contain ``..``, a Digest is
lowercase hex of the right length for a supported algorithm.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from .errors import ErrorCode, RegistryError

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FETCH_ID = re.compile(r"[0-9]{20}-[0-9a-f]{8}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RUN_ID = re.compile(r"[0-9a-f]{32}")

MAX_NAME_LENGTH = 255

HEX_LENGTHS = {"sha256": 64, "sha512": 128}
"""The digest algorithms the registry stores content under, and their hex lengths."""


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


def is_repository_name(value: str) -> bool:
    return len(value) <= MAX_NAME_LENGTH and _NAME.fullmatch(value) is not None


class RepositoryName(str):
    """A repository name that matches the distribution spec's grammar."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: str) -> RepositoryName:
        if not is_repository_name(value):
            raise RegistryError(ErrorCode.NAME_INVALID, {"name": value[: MAX_NAME_LENGTH + 1]})
        return cls(value)


class Tag(str):
    __slots__ = ()

    @classmethod
    def parse(cls, value: str) -> Tag:
        if not _TAG.fullmatch(value):
            raise RegistryError(ErrorCode.TAG_INVALID, {"tag": value[:129]})
        return cls(value)


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        if value.startswith("sha256:") and _SHA256_HEX.fullmatch(value, 7):
            return cls("sha256", value[7:])  # the usual case, once over the string
        match = _DIGEST.fullmatch(value)
        if not match:
            raise RegistryError(ErrorCode.DIGEST_INVALID, {"digest": value[:200]})
        algorithm, encoded = match.groups()
        if algorithm not in HEX_LENGTHS:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                {"digest": value[:200], "reason": f"unsupported algorithm {algorithm}"},
            )
        if len(encoded) != HEX_LENGTHS[algorithm] or not _LOWER_HEX.fullmatch(encoded):
            raise RegistryError(ErrorCode.DIGEST_INVALID, {"digest": value[:200]})
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def __hash__(self) -> int:
        # The hex alone: it tells algorithms apart by its length, and a string caches its hash,
        # where the generated hash builds and hashes a tuple on every set or dict operation
        # (hundreds of thousands in a garbage collection).
        return hash(self.hex)


def new_hasher(algorithm: str) -> Hasher:
    return hashlib.new(algorithm)


def parse_algorithm(value: str) -> str:
    if value not in HEX_LENGTHS:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID, {"reason": f"unsupported digest algorithm {value[:40]!r}"}
        )
    return value


class UploadId(str):
    __slots__ = ()

    @classmethod
    def parse(cls, value: str) -> UploadId:
        if not _UPLOAD_ID.fullmatch(value):
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"upload": value[:64]})
        return cls(value)


class RunId(str):
    """A garbage collection run (or repository deletion) holding the maintenance lease."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: str) -> RunId:
        if not _RUN_ID.fullmatch(value):
            raise ValueError(f"{value[:40]!r} is not a run id")
        return cls(value)


class FetchId(str):
    """A claim on downloading a mirrored blob: the time it was made (nanoseconds since the epoch,
    so ids sort by age) and a random part."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: str) -> FetchId | None:
        return cls(value) if _FETCH_ID.fullmatch(value) else None


Reference = Tag | Digest


def parse_reference(value: str) -> Reference:
    """A manifest reference: a digest when it has a colon, otherwise a tag."""
    return Digest.parse(value) if ":" in value else Tag.parse(value)
