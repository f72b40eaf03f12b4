"""One reader for every section of the configuration: the registry's, auth's and the storage
drivers'. Typed accessors with one set of error messages, one duration syntax, one address
syntax, and every problem collected so that an invalid configuration is reported at once.

It imports nothing of the registry, auth or the drivers, so each of them can use it.
"""

from .addresses import parse_address
from .durations import parse_duration
from .files import read_named_file
from .section import Section

__all__ = ["Section", "parse_address", "parse_duration", "read_named_file"]
