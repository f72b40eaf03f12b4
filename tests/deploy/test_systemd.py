"""The systemd unit, its service account and the sample /etc/dockyard/config.yml.

systemd is not PID 1 here, so the unit is checked with systemd-analyze and its commands are run
directly; the sysusers file is applied to a scratch root.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from config_reader import parse_duration
from registry.config import load_config
from registry.supervisor import longest_stop
from tests.support.nginx import SHIPPED_UPSTREAM, TLS_SITE, Nginx
from tests.support.tls import ServerCertificates

from .conftest import trusting
from .flows import Upload
from .shipped import (
    INSTALLED_CONFIG,
    SAMPLE_CONFIG,
    SYSUSERS,
    UNIT,
    dockyard_binary,
    run_here,
    sample_config,
)

INSTALLED_BINARY = "/opt/dockyard/bin/dockyard"


def service_section() -> dict[str, list[str]]:
    """[Service] keys with every value (systemd allows repeating a key)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[Service]" and "=" in stripped and not stripped.startswith(("#", ";")):
            key, _, value = stripped.partition("=")
            values.setdefault(key, []).append(value)
    return values


def unit_environment(service: dict[str, list[str]]) -> dict[str, str]:
    """The variables the unit's ``Environment=`` lines set."""
    return dict(value.split("=", 1) for value in service["Environment"])


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # The one substitution: the installed binary's path, which does not exist on this machine.
    unit = tmp_path / "dockyard.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_BINARY, dockyard_binary()))
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "", verified.stderr  # unknown keys and bad values only warn


def test_unit_is_hardened() -> None:
    service = service_section()
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "CapabilityBoundingSet": "", "User": "dockyard",
    }.items():  # fmt: skip
        assert service[key] == [value], key
    scored = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for dockyard\.service: (\d+\.\d+)", scored.stdout)
    assert found, scored.stdout + scored.stderr
    assert float(found.group(1)) <= 2.0, scored.stdout  # systemd rates up to 3.9 as "OK"


def test_storage_is_the_state_directory() -> None:
    """ProtectSystem=strict leaves only the StateDirectory writable: the config must store there."""
    service = service_section()
    assert service["StateDirectory"] == ["dockyard"]
    assert sample_config()["storage"]["filesystem"]["rootdirectory"] == "/var/lib/dockyard"
    assert service["ConfigurationDirectory"] == ["dockyard"]


def test_stop_timeout_allows_the_drain() -> None:
    """systemd kills the service TimeoutStopSec after SIGTERM: that must cover the drain timeout
    of the shipped config and the exit after it."""
    (timeout,) = service_section()["TimeoutStopSec"]
    drain = load_config(SAMPLE_CONFIG, environ={}).http.drain_timeout
    assert parse_duration(timeout) >= longest_stop(drain)


def test_sysusers_creates_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)], check=True, capture_output=True, timeout=60
    )
    accounts = {
        line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    user = service_section()["User"][0]
    assert accounts[user][5] == "/var/lib/dockyard"
    assert accounts[user][6] == "/usr/sbin/nologin"
    assert re.search(rf"^{user}:", (tmp_path / "etc/group").read_text(), re.MULTILINE)


def test_sample_config_is_valid_and_complete() -> None:
    config = load_config(SAMPLE_CONFIG, environ={})
    assert config.warnings == ()
    # Where the shipped nginx sites forward to.
    assert f"server unix:{config.http.addr};" == SHIPPED_UPSTREAM


def test_unit_commands_check_the_config_and_serve(tmp_path: Path) -> None:
    service = service_section()
    (pre,) = service["ExecStartPre"]
    (start,) = service["ExecStart"]
    environment = unit_environment(service)
    # Storage moves to the test's folder, as in every command run here.
    overrides = {
        **os.environ,
        **environment,
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "data"),
    }

    check = [arg.replace(INSTALLED_BINARY, dockyard_binary()) for arg in shlex.split(pre)]
    check = [str(SAMPLE_CONFIG) if arg == INSTALLED_CONFIG else arg for arg in check]
    checked = subprocess.run(check, capture_output=True, text=True, env=overrides, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "OK" in checked.stdout

    argv = shlex.split(start)
    assert argv[0] == INSTALLED_BINARY
    # On the unix socket the sample config names (moved to the test's folder), where nginx on
    # this machine forwards to: the unit's RuntimeDirectory is its folder.
    assert sample_config()["http"]["net"] == "unix"
    assert Path(sample_config()["http"]["addr"]).parent == Path("/run") / service["RuntimeDirectory"][0]
    assert service["RuntimeDirectoryMode"] == ["0750"]  # nginx's user reaches it through the group
    process, client = run_here(["dockyard", *argv[1:]], environment, tmp_path)
    try:
        assert client.get("/readyz").json() == {"storage": "ok"}
        assert stat.S_IMODE((tmp_path / "registry.sock").stat().st_mode) == 0o660
    finally:
        client.close()
        process.stop()


@pytest.mark.nginx
def test_nginx_sends_the_blobs_of_the_deployment_as_shipped(
    start_nginx: Callable[..., Nginx], certificates: ServerCertificates, tmp_path: Path
) -> None:
    """The unit's command with the sample config, under the unit's UMask, behind the shipped TLS
    site (its upstream and blobs alias moved to the test's folder, as the socket and storage
    are): nginx sends a pushed blob itself, and the registry writes it readable by nginx's
    user, who is in the registry's group, and by no one else."""
    service = service_section()
    environment = unit_environment(service)
    (umask,) = service["UMask"]
    (start,) = service["ExecStart"]
    previous = os.umask(int(umask, 8))  # the server inherits it, as from systemd
    try:
        process, direct = run_here(["dockyard", *shlex.split(start)[1:]], environment, tmp_path)
    finally:
        os.umask(previous)
    data = tmp_path / "data"
    nginx = start_nginx(TLS_SITE, f"unix:{tmp_path / 'registry.sock'}", certificates, storage_root=data)
    try:
        content = os.urandom(3 * (1 << 20) + 5)
        with httpx.Client(base_url=nginx.url, verify=trusting(certificates), timeout=60) as client:
            digest = Upload(client, "shipped/app").start().finish(content)
            pulled = client.get(f"/v2/shipped/app/blobs/{digest}")
        assert (pulled.status_code, pulled.content) == (200, content)
        assert pulled.headers.get_list("docker-content-digest") == [digest]
        # The registry's own answer over its socket only names the file nginx sent.
        handed = direct.get(f"/v2/shipped/app/blobs/{digest}")
        assert (handed.status_code, handed.content) == (200, b"")
        hex_digest = digest.removeprefix("sha256:")
        named = handed.headers["x-accel-redirect"]
        assert named == f"/_dockyard/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    finally:
        direct.close()
        process.stop()
    blob = data / "docker/registry/v2/blobs" / named.removeprefix("/_dockyard/blobs/")
    for path in [*reversed(blob.relative_to(data).parents), blob.relative_to(data)]:
        mode = stat.S_IMODE((data / path).stat().st_mode)
        needed = stat.S_IRGRP | (stat.S_IXGRP if (data / path).is_dir() else 0)
        assert (mode & needed, mode & stat.S_IRWXO) == (needed, 0), (path, oct(mode))
