"""The S3 storage driver (``storage.s3``): Distribution's bucket layout and configuration keys.

``S3Driver`` is imported on first use: checking a configuration (``check_parameters``) must not
load boto3, which costs a process about 30 MiB (the supervisor of several workers only checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import S3Settings, check_parameters, parse_settings

if TYPE_CHECKING:
    from .driver import S3Driver

__all__ = ["S3Driver", "S3Settings", "check_parameters", "parse_settings"]


def __getattr__(name: str) -> Any:
    if name == "S3Driver":
        from .driver import S3Driver  # noqa: PLC0415 - loads boto3; see the module's docstring

        return S3Driver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
