"""Local filesystem driver: a path maps to a file below ``rootdirectory``. ``driver`` serves the
contract, ``staging`` makes small writes whole or absent across crashes, ``writer`` appends
uploads, ``paging`` brings mapped pages in from worker threads."""

from .driver import FilesystemDriver
from .paging import populate
from .staging import TEMP_PREFIX

__all__ = ["TEMP_PREFIX", "FilesystemDriver", "populate"]
