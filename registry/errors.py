"""Every error the API can answer with: its wire code, HTTP status and message, in one table.

Services and handlers raise ``RegistryError(ErrorCode.X, detail)``; one exception
handler renders ``{"errors": [{"code", "message", "detail"}]}``. Nothing else
maps errors to statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class ErrorCode(Enum):
    # name = (wire code, HTTP status, message)
    BLOB_UNKNOWN = ("BLOB_UNKNOWN", 404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
    UPLOAD_RANGE_INVALID = ("BLOB_UPLOAD_INVALID", 416, "chunk does not continue the upload")
    DIGEST_INVALID = ("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )
    MANIFEST_INVALID = ("MANIFEST_INVALID", 400, "manifest invalid")
    MANIFEST_TOO_LARGE = ("SIZE_INVALID", 413, "manifest is larger than the registry accepts")
    MANIFEST_UNKNOWN = ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
    NAME_INVALID = ("NAME_INVALID", 400, "invalid repository name")
    NAME_UNKNOWN = ("NAME_UNKNOWN", 404, "repository name not known to registry")
    TAG_INVALID = ("TAG_INVALID", 400, "invalid tag")
    SIZE_INVALID = ("SIZE_INVALID", 400, "provided length did not match content length")
    RANGE_NOT_SATISFIABLE = ("SIZE_INVALID", 416, "requested range not satisfiable")
    PAGINATION_NUMBER_INVALID = ("PAGINATION_NUMBER_INVALID", 400, "invalid number of results")
    PARAMETER_INVALID = ("UNSUPPORTED", 400, "invalid query parameter")
    UNAUTHORIZED = ("UNAUTHORIZED", 401, "authentication required")
    DENIED = ("DENIED", 403, "requested access to the resource is denied")
    NOT_FOUND = ("UNSUPPORTED", 404, "no such API endpoint")
    METHOD_NOT_ALLOWED = ("UNSUPPORTED", 405, "the operation is unsupported")
    DELETE_DISABLED = ("UNSUPPORTED", 405, "deletes are disabled on this registry")
    READ_ONLY = ("UNSUPPORTED", 405, "the registry is in read-only mode")
    MIRROR_READ_ONLY = ("UNSUPPORTED", 405, "the repository mirrors another registry: pushes are refused")
    UPSTREAM_FAILED = ("UNKNOWN", 502, "the mirrored registry answered with an error")
    UPSTREAM_UNAVAILABLE = ("UNAVAILABLE", 503, "the mirrored registry cannot be reached")
    TOO_MANY_REQUESTS = ("TOOMANYREQUESTS", 429, "too many requests")
    UNAVAILABLE = ("UNAVAILABLE", 503, "storage is temporarily unavailable")
    STORAGE_FULL = ("STORAGE_FULL", 503, "the registry's storage is full")
    STORAGE_READ_ONLY = ("STORAGE_READ_ONLY", 503, "the registry's storage refuses writes")
    MAINTENANCE_BUSY = (
        "UNAVAILABLE",
        503,
        "a garbage collection or repository deletion is running; retry later",
    )
    USAGE_UNKNOWN = (
        "USAGE_UNKNOWN",
        404,
        "no usage figures yet: they are recorded by `dockyard usage` and by garbage collection",
    )
    UNKNOWN = ("UNKNOWN", 500, "unknown error")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def message(self) -> str:
        return self.value[2]


class RegistryError(Exception):
    """An error answered to the client as the spec's error JSON."""

    def __init__(
        self,
        code: ErrorCode,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.code}: {detail}" if detail is not None else code.code)
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.code, "message": self.code.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}
