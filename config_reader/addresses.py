"""The one HOST:PORT syntax of every address the registry and the token server listen on: in
their sections (``http.addr``, ``http.debug.addr``, ``tokenserver.addr``) and in ``--addr``.

HOST is a name or an IPv4 address, or an IPv6 address in brackets (``[::1]:5000``); an empty
HOST (``:5000``) means every interface. PORT is a decimal number up to 65535.
"""

from __future__ import annotations

import re

EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - what an empty HOST asks for
_ADDRESS = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(?P<port>[0-9]{1,5})")


def parse_address(text: str) -> tuple[str, int]:
    """The host (brackets removed; ``EVERY_INTERFACE`` when empty) and port; ValueError otherwise."""
    address = _ADDRESS.fullmatch(text)
    if address is None or int(address["port"]) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return address["host"].strip("[]") or EVERY_INTERFACE, int(address["port"])
