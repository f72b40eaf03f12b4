"""Local filesystem driver: a path maps to a file below ``rootdirectory``. ``driver`` serves the
contract, ``staging`` makes small writes whole or absent across crashes, ``writer`` appends
uploads."""

from .driver import FilesystemDriver, populate
from .staging import TEMP_PREFIX

__all__ = ["TEMP_PREFIX", "FilesystemDriver", "populate"]
