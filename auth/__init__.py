"""Access controllers: who may pull, push and delete what.

``create_access_controller`` builds the controller configured in the ``auth``
section of the registry's configuration; with no section, every request is
allowed (the five-minute local start). ``create_token_server`` builds the
built-in token server from the ``tokenserver`` section, an ASGI app the registry
mounts at its ``path``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import Access, AccessController, AllowAll, Challenge, Denied, Grant
from .section import AuthConfigError, Section

if TYPE_CHECKING:
    from .tokenserver import TokenServer

# The controllers and the token server import bcrypt, PyJWT and cryptography when they are
# configured, not before: a registry without auth carries none of them.

__all__ = [
    "Access",
    "AccessController",
    "AllowAll",
    "AuthConfigError",
    "Challenge",
    "Denied",
    "Grant",
    "TokenServer",
    "create_access_controller",
    "create_token_server",
]


CONTROLLERS = ("htpasswd", "token")


def create_access_controller(
    section: Mapping[str, Any] | None, token_server: TokenServer | None = None
) -> AccessController:
    """Build the controller for the configuration's ``auth`` section; with the built-in
    ``token_server`` beside it, the catalog lists each account only what its rules let it pull.

    Raises AuthConfigError listing every problem found (missing keys, unreadable files,
    non-bcrypt htpasswd lines, unusable keys) - never a secret.
    """
    if not section:
        return AllowAll()
    if not isinstance(section, Mapping):
        raise AuthConfigError(["auth: must be a mapping"])
    names = sorted(section)
    if len(names) > 1:
        raise AuthConfigError([f"auth: configure exactly one of {', '.join(names)}"])
    name = names[0]
    if name == "none":  # Distribution's explicit "no authentication"
        return AllowAll()
    if name not in CONTROLLERS:
        supported = ", ".join((*CONTROLLERS, "none"))
        raise AuthConfigError([f"auth.{name}: unsupported (supported: {supported})"])
    problems: list[str] = []
    reader = Section(f"auth.{name}", section[name], problems)
    if name == "htpasswd":
        from .htpasswd import htpasswd_controller

        controller = htpasswd_controller(reader)
    else:
        from .token import token_controller

        controller = token_controller(reader, token_server.settings.acl if token_server else None)
    if problems or controller is None:
        raise AuthConfigError(problems)
    return controller


def create_token_server(
    section: object, *, auth: Mapping[str, Any] | None, embedded: bool
) -> TokenServer | None:
    """The built-in token server for the ``tokenserver`` section, or None when there is none;
    see ``auth.tokenserver.create_token_server``."""
    if section is None:
        return None
    from .tokenserver import create_token_server as build

    return build(section, auth=auth, embedded=embedded)
