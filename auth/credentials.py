"""HTTP authentication header parsing and challenge formatting (RFC 7617 Basic, RFC 6750 Bearer)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

MAX_HEADER_LENGTH = 32 * 1024
"""Longer Authorization values are refused before any decoding work."""


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log line through repr()
        return f"BasicCredentials(username={self.username!r}, password=<hidden>)"


def authorization(headers: Mapping[str, str], scheme: str) -> str | None:
    """The credentials after ``scheme`` in the Authorization header, or None if absent/other."""
    value = headers.get("authorization")
    if value is None or len(value) > MAX_HEADER_LENGTH:
        return None
    found, _, rest = value.strip().partition(" ")
    if found.lower() != scheme.lower():
        return None
    rest = rest.strip()
    return rest or None


def parse_basic(encoded: str) -> BasicCredentials | None:
    """``user:password`` from base64, or None when malformed."""
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = decoded.decode("latin-1")  # what older clients send for non-ASCII passwords
    username, separator, password = text.partition(":")
    if not separator or not username:
        return None
    return BasicCredentials(username, password)


def basic_credentials(headers: Mapping[str, str]) -> BasicCredentials | None:
    encoded = authorization(headers, "basic")
    return parse_basic(encoded) if encoded else None


def quote(value: str) -> str:
    """An RFC 7230 quoted-string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def challenge(scheme: str, params: Mapping[str, str]) -> str:
    """``Scheme key="value",key="value"`` in the order given."""
    return f"{scheme} " + ",".join(f"{key}={quote(value)}" for key, value in params.items())
