from __future__ import annotations

import pytest

from auth.keygen import GeneratedKey, generate_token_key


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
