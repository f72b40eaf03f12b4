"""Building tokens by hand (including malicious ones) and small config files for auth tests."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import httpx

ISSUER = "test-issuer"
SERVICE = "test-registry"
REALM = "http://127.0.0.1:9/auth/token"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS with exactly this header and claims, signed by ``sign`` (any bytes)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def claims(
    access: list[dict[str, Any]] | None = None, lifetime: float = 300, **overrides: Any
) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + int(lifetime),
        "nbf": now,
        "iat": now,
        "jti": "test-token",
        "access": access if access is not None else [],
    }
    base.update(overrides)
    return base


def repo_access(name: str, *actions: str) -> dict[str, Any]:
    return {"type": "repository", "name": name, "actions": list(actions)}


def write_htpasswd(path: Path, users: dict[str, str], cost: int = 4) -> Path:
    """Users with low-cost bcrypt hashes (tests only: cost 4 keeps them fast)."""
    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(cost)).decode()}" for user, pw in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def challenge_params(value: str) -> tuple[str, dict[str, str]]:
    """Scheme and parameters of a WWW-Authenticate value (quoted strings, no escapes needed)."""
    scheme, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    while rest:
        key, _, rest = rest.partition("=")
        assert rest.startswith('"'), value
        end = rest.index('"', 1)
        params[key.strip().lstrip(",")] = rest[1:end]
        rest = rest[end + 1 :].lstrip(",")
    return scheme, params


def basic(user: str, password: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, password)
