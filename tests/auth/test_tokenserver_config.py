"""The `tokenserver` section: every problem listed, and the registry must trust what it issues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from auth import AuthConfigError
from auth.keygen import GeneratedKey
from auth.tokenserver import TokenServer, create_token_server
from config_reader import parse_duration
from registry.config import ConfigError, load_config

from .helpers import ISSUER, REALM, SERVICE, write_htpasswd
from .servers import token_server_section


def auth_token(certificate: Path, **extra: Any) -> dict[str, Any]:
    settings = {"realm": REALM, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(certificate)}
    return {"token": {**settings, **extra}}


def build(config: dict[str, Any], *, embedded: bool = True) -> TokenServer | None:
    return create_token_server(config.get("tokenserver"), auth=config.get("auth"), embedded=embedded)


def problems_of(config: dict[str, Any], *, embedded: bool = True) -> list[str]:
    with pytest.raises(AuthConfigError) as raised:
        build(config, embedded=embedded)
    return raised.value.problems


def test_a_consistent_configuration_builds(tmp_path: Path, es256_key: GeneratedKey) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "pw"})
    config = {
        "auth": auth_token(es256_key.certificate_path),
        "tokenserver": token_server_section(es256_key, htpasswd, expiration="10m", refreshexpiration="24h"),
    }
    server = build(config)
    assert server is not None
    assert server.settings.path == "/auth/token"
    assert server.settings.issuer.expiration == 600
    assert server.settings.issuer.refresh_expiration == 86400
    assert build({"auth": config["auth"]}) is None


def test_every_problem_is_listed_without_secrets(tmp_path: Path, es256_key: GeneratedKey) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    section = {
        "signingkey": str(tmp_path / "missing.key"),
        "htpasswd": str(htpasswd),
        "expiration": "30s",
        "path": "/v2/token",
        "tls": {"certificate": str(es256_key.certificate_path)},
        "acl": [{"account": "alice", "repository": "*", "actions": ["fly"]}],
        "colour": "blue",
    }
    problems = "\n".join(problems_of({"tokenserver": section}, embedded=False))
    for expected in (
        "tokenserver.issuer: required",
        "tokenserver.service: required",
        "tokenserver.signingkey: " + str(tmp_path / "missing.key") + ": no such file",
        "tokenserver.expiration: must be at least 60 seconds",
        "tokenserver.path: must start with / and lie outside /v2/",
        "tokenserver.tls: give both certificate and key",
        "tokenserver.acl[0].actions: 'fly' is not one of",
        "tokenserver.colour: unknown key",
        "only bcrypt entries",
    ):
        assert expected in problems
    assert "W6ph5Mm5Pz8GgiULbPgzG37mj9g" not in problems


def test_certificate_must_hold_the_signing_key(
    tmp_path: Path, es256_key: GeneratedKey, attacker_key: GeneratedKey
) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "pw"})
    section = token_server_section(es256_key, htpasswd, certificate=str(attacker_key.certificate_path))
    assert problems_of({"tokenserver": section}, embedded=False) == [
        "tokenserver.certificate: does not hold the signing key's public key"
    ]


def test_registry_must_trust_the_embedded_token_server(
    tmp_path: Path, es256_key: GeneratedKey, attacker_key: GeneratedKey
) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "pw"})
    section = token_server_section(es256_key, htpasswd)
    [untrusted] = problems_of({"auth": auth_token(attacker_key.certificate_path), "tokenserver": section})
    assert "auth.token does not accept tokenserver's tokens" in untrusted
    mismatched = problems_of(
        {
            "auth": auth_token(es256_key.certificate_path, issuer="other", service="elsewhere"),
            "tokenserver": section,
        }
    )
    assert mismatched == [
        "tokenserver.issuer: must equal auth.token.issuer",
        "tokenserver.service: must equal auth.token.service",
    ]
    [no_token_auth] = problems_of({"tokenserver": section}, embedded=True)
    assert "auth.token is not" in no_token_auth
    assert build({"tokenserver": section}, embedded=False) is not None


# --- one duration syntax: the registry's sections and the token server's read it alike -----------

#: "300" was an error in the registry's sections and ".5h" in the token server's; both are
#: durations everywhere now.
DURATIONS = ["300", "5m", "300s", ".5h", "+10m", "1h30m", "5.m", "2h45m", "86400"]


def write_both(tmp_path: Path, key: GeneratedKey, purging: dict[str, str], **tokenserver: str) -> Path:
    """A registry config file with upload purging and a token server."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "pw"})
    storage = {
        "filesystem": {"rootdirectory": str(tmp_path / "root")},
        "maintenance": {"uploadpurging": purging},
    }
    config = {
        "version": "0.1",
        "storage": storage,
        "tokenserver": token_server_section(key, htpasswd, **tokenserver),
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def problems_of_both(path: Path) -> tuple[list[str], list[str]]:
    """The problems the registry finds in the config file at ``path``, then the token server's."""
    with pytest.raises(ConfigError) as registry_error:
        load_config(path, {})
    config = registry_error.value.config
    assert config is not None
    return registry_error.value.problems, problems_of({"tokenserver": config.tokenserver}, embedded=False)


@pytest.mark.parametrize("text", DURATIONS)
def test_every_section_reads_a_duration_alike(tmp_path: Path, es256_key: GeneratedKey, text: str) -> None:
    path = write_both(
        tmp_path, es256_key, {"age": text, "interval": text}, expiration=text, refreshexpiration=text
    )
    config = load_config(path, {})
    server = create_token_server(config.tokenserver, auth=None, embedded=False)
    assert server is not None
    seconds = parse_duration(text)
    assert seconds >= 300
    assert config.storage.upload_purging.age == seconds
    assert config.storage.upload_purging.interval == seconds
    assert server.settings.issuer.expiration == seconds
    assert server.settings.issuer.refresh_expiration == seconds


@pytest.mark.parametrize("text", ["banana", "1d", "1h30", "10 m", "-"])
def test_every_section_refuses_a_non_duration_in_the_same_words(
    tmp_path: Path, es256_key: GeneratedKey, text: str
) -> None:
    [age], [expiration] = problems_of_both(write_both(tmp_path, es256_key, {"age": text}, expiration=text))
    message = f"{text!r} is not a duration such as 300 (seconds), 90s, 45m, 2h10m or 168h"
    assert age == f"storage.maintenance.uploadpurging.age: {message}"
    assert expiration == f"tokenserver.expiration: {message}"


@pytest.mark.parametrize("text", ["nonsense", "localhost:99999", "127.0.0.1:", "::1:5000", "a_b:80"])
def test_the_registry_and_the_token_server_refuse_a_bad_address_in_the_same_words(
    tmp_path: Path, es256_key: GeneratedKey, text: str
) -> None:
    path = write_both(tmp_path, es256_key, {}, addr=text)
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "http": {"addr": text}}))
    [http_addr], [token_addr] = problems_of_both(path)
    assert http_addr == f"http.addr: {text!r} is not HOST:PORT"
    assert token_addr == f"tokenserver.addr: {text!r} is not HOST:PORT"


def test_environment_overrides_read_durations_alike(tmp_path: Path, es256_key: GeneratedKey) -> None:
    config = load_config(
        write_both(tmp_path, es256_key, {}),
        {"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "600", "REGISTRY_TOKENSERVER_EXPIRATION": "600"},
    )
    server = create_token_server(config.tokenserver, auth=None, embedded=False)
    assert server is not None
    assert config.storage.upload_purging.age == server.settings.issuer.expiration == 600
