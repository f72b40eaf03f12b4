"""The plain-HTTP listener's answer to a TLS handshake: one informative line, not a warning.

Docker tries TLS first on a registry it was told is insecure and falls back to HTTP when the
answer is an HTTP response. uvicorn answers that ClientHello with a 400 and logs "Invalid HTTP
request received." as a warning on every push, which operators read as an error. This protocol
recognises the ClientHello, says what happened at info level once per client address (in each
worker: the addresses told about are the worker's own, few and bounded), and still answers the
400 that makes Docker fall back.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("registry")

REMEMBERED_CLIENTS = 1024
"""Client addresses already told about, per worker; the least recently seen are forgotten
first, so a scan from many addresses cannot grow the worker's memory."""

_HANDSHAKE_RECORD = 0x16
_CLIENT_HELLO = 0x01
_ANSWER = "This port speaks plain HTTP; the client sent a TLS handshake."


def is_tls_client_hello(data: bytes) -> bool:
    """A TLS record header (handshake, version 3.x) carrying a ClientHello: no HTTP request
    line can start with these bytes."""
    return len(data) >= 6 and data[0] == _HANDSHAKE_RECORD and data[1] == 3 and data[5] == _CLIENT_HELLO


class RecentAddresses:
    """A set of the most recently added addresses, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._addresses: OrderedDict[str, None] = OrderedDict()

    def add(self, address: str) -> bool:
        """Remember ``address``; False when it was already remembered."""
        if address in self._addresses:
            self._addresses.move_to_end(address)
            return False
        self._addresses[address] = None
        if len(self._addresses) > self.capacity:
            self._addresses.popitem(last=False)
        return True


_told = RecentAddresses(REMEMBERED_CLIENTS)


class PlainHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, telling a TLS handshake apart from a malformed request."""

    _first_bytes = True
    """True until the connection (one protocol instance each) receives its first bytes."""

    def data_received(self, data: bytes) -> None:
        # Only a connection's first bytes can be a handshake; later ones may be any body.
        first, self._first_bytes = self._first_bytes, False
        if first and is_tls_client_hello(data):
            address = self.client[0] if self.client else "unknown"
            if _told.add(address):
                log.info(
                    "%s: a client tried TLS on this plain-HTTP port; Docker does this before "
                    "falling back to HTTP",
                    address,
                )
            self.send_400_response(_ANSWER)
            return
        super().data_received(data)
