"""Which client an ``X-Forwarded-For`` chain names, behind proxies of ours (10.0.0.0/8)."""

from __future__ import annotations

import pytest

from registry.observability.exchange import forwarded_client, trusted_peer_check

OUR_PROXIES = trusted_peer_check(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ([b"203.0.113.7"], ("203.0.113.7", 0)),
        # What the client wrote comes first; the proxies append the peers they saw.
        ([b"198.51.100.1, 203.0.113.7"], ("203.0.113.7", 0)),
        ([b"198.51.100.1, 203.0.113.7, 10.1.2.3"], ("203.0.113.7", 0)),
        ([b"198.51.100.1", b"203.0.113.7, 10.1.2.3"], ("203.0.113.7", 0)),
        ([b"10.9.9.9, 10.1.2.3"], ("10.9.9.9", 0)),  # a proxy of ours was the client
        ([b"203.0.113.7:4711"], ("203.0.113.7", 4711)),
        ([b"[2001:db8::7]:4711"], ("2001:db8::7", 4711)),
        ([b"2001:db8::7"], ("2001:db8::7", 0)),
        ([b"::ffff:10.1.2.3, 203.0.113.7"], ("203.0.113.7", 0)),
        ([b"203.0.113.7, ::ffff:10.1.2.3"], ("203.0.113.7", 0)),
        ([b", 203.0.113.7"], ("203.0.113.7", 0)),  # an empty header the proxy appended to
        # Not an address: kept whole, never trusted, never split into one.
        ([b"10.1.2.3:x"], ("10.1.2.3:x", 0)),
        ([b"[10.1.2.3]x"], ("[10.1.2.3]x", 0)),
        ([b"203.0.113.7:" + b"9" * 5000], ("203.0.113.7:" + "9" * 5000, 0)),
        ([b"203.0.113.7:\xb2"], ("203.0.113.7:\xb2", 0)),
        ([b""], None),
        ([b"203.0.113.7, "], None),
    ],
)
def test_the_client_is_the_rightmost_entry_that_is_no_proxy_of_ours(
    headers: list[bytes], client: tuple[str, int] | None
) -> None:
    assert forwarded_client(headers, OUR_PROXIES) == client
