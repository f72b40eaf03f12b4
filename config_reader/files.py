"""Reading a file that a setting names, with the one message for a file that cannot be read."""

from __future__ import annotations

from pathlib import Path


def read_named_file(path: Path, problems: list[str], where: str) -> bytes | None:
    """The bytes of ``path``, or None with ``WHERE: cannot read PATH: REASON`` in ``problems``."""
    try:
        return path.read_bytes()
    except OSError as error:
        problems.append(f"{where}: cannot read {path}: {error.strerror or error}")
        return None
