"""Adding, changing and removing users in an htpasswd file (what `htpasswd -B` does).

Written as temp file + fsync + rename, so a registry reloading the file sees the old or the new
version, never half of one.
"""

from __future__ import annotations

from pathlib import Path

import bcrypt

from .files import write_atomically

BCRYPT_COST = 10
BCRYPT_MAX_PASSWORD = 72


def valid_username(username: str) -> bool:
    return bool(username) and ":" not in username and username.isprintable()


def set_password(path: Path, username: str, password: str, cost: int = BCRYPT_COST) -> None:
    """Add ``username`` or replace its password; other lines are kept as they are."""
    if not valid_username(username):
        raise ValueError("a username must be printable and contain no ':'")
    encoded = password.encode("utf-8")
    if not encoded or len(encoded) > BCRYPT_MAX_PASSWORD:
        raise ValueError(f"a password must have 1 to {BCRYPT_MAX_PASSWORD} bytes")
    hashed = bcrypt.hashpw(encoded, bcrypt.gensalt(cost)).decode("ascii")
    lines = [line for line in _lines(path) if line.partition(":")[0] != username]
    lines.append(f"{username}:{hashed}")
    _replace(path, lines)


def remove_user(path: Path, username: str) -> bool:
    """Remove ``username``; False if it was not there."""
    lines = _lines(path)
    kept = [line for line in lines if line.partition(":")[0] != username]
    if len(kept) == len(lines):
        return False
    _replace(path, kept)
    return True


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _replace(path: Path, lines: list[str]) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600  # hashes are not for everyone to read
    write_atomically(path, "".join(f"{line}\n" for line in lines).encode("utf-8"), mode)
