from __future__ import annotations

from collections.abc import Iterator

import pytest

from auth.keygen import GeneratedKey, generate_token_key

from .servers import TokenServerProcess, start_token_server


@pytest.fixture(scope="session")
def es256_key(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKey:
    """A token signing key and its self-signed certificate, as `generate-token-key` makes them."""
    return generate_token_key(tmp_path_factory.mktemp("es256"), "ES256")


@pytest.fixture(scope="session")
def rs256_key(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKey:
    return generate_token_key(tmp_path_factory.mktemp("rs256"), "RS256")


@pytest.fixture(scope="session")
def attacker_key(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKey:
    """A key nobody configured as trusted."""
    return generate_token_key(tmp_path_factory.mktemp("attacker"), "ES256")


@pytest.fixture(scope="session")
def token_server(
    tmp_path_factory: pytest.TempPathFactory, es256_key: GeneratedKey
) -> Iterator[TokenServerProcess]:
    """``python -m auth token-server`` on a free port, users as in servers.PASSWORDS."""
    server = start_token_server(tmp_path_factory.mktemp("token-server"), es256_key)
    yield server
    server.stop()
