"""The S3 storage driver (``storage.s3``): Distribution's bucket layout and configuration keys."""

from .driver import S3Driver
from .settings import S3Settings, parse_settings

__all__ = ["S3Driver", "S3Settings", "parse_settings"]
