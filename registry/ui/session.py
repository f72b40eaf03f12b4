"""The interface's session: one sealed cookie in the browser, nothing in the registry's processes.

The cookie is sealed with AES-GCM under a key every worker and replica derives from the same
secret (``http.secret``), so any of them opens it, and whoever holds the cookie can neither read
nor change what it carries: the credential the access controller is shown on the account's
behalf. It lives ``SESSION_SECONDS``; signing in replaces it, signing out drops it. A visitor who
never signed in gets one too, without an account: its nonce is what CSRF tokens are made from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COOKIE = "dockyard_session"
SESSION_SECONDS = 30 * 60
MAX_COOKIE_CHARACTERS = 3000
"""Browsers keep cookies up to about 4 KiB; anything longer is not one of ours."""
_AEAD_NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    """Random per session; CSRF tokens are derived from it."""
    expires: float
    account: str | None = None
    credential: str | None = None
    """What the access controller is shown for the account: an ``Authorization`` header value
    (Basic), or the built-in token server's refresh token."""


def new_session(account: str | None = None, credential: str | None = None) -> Session:
    return Session(secrets.token_urlsafe(16), time.time() + SESSION_SECONDS, account, credential)


class Sealer:
    """Seals sessions into cookie values and opens them; makes and checks CSRF tokens."""

    def __init__(self, secret: str) -> None:
        self._aead_key = _derive(secret, b"session cookie")
        self._cipher: AESGCM | None = None
        self._csrf_key = _derive(secret, b"csrf token")

    @property
    def _aead(self) -> AESGCM:
        """Made on first use: cryptography costs each worker about 9 MiB of memory, and a
        registry whose interface nobody signs in to never needs it."""
        if self._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

            self._cipher = AESGCM(self._aead_key)
        return self._cipher

    def seal(self, session: Session) -> str:
        document = {"n": session.nonce, "e": session.expires, "a": session.account, "c": session.credential}
        nonce = os.urandom(_AEAD_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(document).encode(), COOKIE.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, value: str | None) -> Session | None:
        """The session a cookie value holds; None when it is missing, not ours, or expired."""
        if not value or len(value) > MAX_COOKIE_CHARACTERS:
            return None
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - loaded with the cipher

        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            plain = self._aead.decrypt(raw[:_AEAD_NONCE_BYTES], raw[_AEAD_NONCE_BYTES:], COOKIE.encode())
            document = json.loads(plain)
            session = Session(
                str(document["n"]),
                float(document["e"]),
                _optional_text(document["a"]),
                _optional_text(document["c"]),
            )
        except (binascii.Error, ValueError, InvalidTag, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_matches(self, session: Session | None, token: str | None) -> bool:
        return (
            session is not None and token is not None and hmac.compare_digest(self.csrf_token(session), token)
        )


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"dockyard web interface\0" + purpose, hashlib.sha256).digest()


def _optional_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("not text")
