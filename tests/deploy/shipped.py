"""The shipped deployment files (container image, compose, systemd, sample config) and running
their commands here, with only the listen address and storage folder moved to the test's."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from registry.config import load_config
from tests.support.launcher import wait_for_socket
from tests.support.processes import ServerProcess, free_port
from tests.support.registry import PROJECT

DEPLOY = PROJECT / "deploy"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "container" / "Dockerfile.dockerignore"
COMPOSE = DEPLOY / "container" / "compose.yml"
UNIT = DEPLOY / "systemd" / "dockyard.service"
SYSUSERS = DEPLOY / "systemd" / "dockyard.sysusers"
SAMPLE_CONFIG = DEPLOY / "etc" / "dockyard" / "config.yml"
INSTALLED_CONFIG = "/etc/dockyard/config.yml"
"""Where the image, the unit and the README put the sample config."""


def sample_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SAMPLE_CONFIG.read_text())
    return loaded


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for each instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text())
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockyard_binary() -> str:
    """The ``dockyard`` console script of the environment running the tests."""
    beside_python = Path(sys.executable).parent / "dockyard"
    found = str(beside_python) if beside_python.exists() else shutil.which("dockyard")
    if found is None:
        raise RuntimeError("the dockyard command is not installed (pip install -e .)")
    return found


def run_here(argv: list[str], env: dict[str, str], workdir: Path) -> tuple[ServerProcess, httpx.Client]:
    """Start a shipped ``dockyard serve`` command with the config at its shipped path replaced by
    the sample file, listening where the config (with ``env``) says, moved under ``workdir``: a
    unix socket there, or a free loopback port; storage in a folder under ``workdir``.

    Returns the process and a client of the registry (close it).
    """
    assert Path(argv[0]).name == "dockyard", argv
    command = [
        dockyard_binary(),
        *(str(SAMPLE_CONFIG) if arg == INSTALLED_CONFIG else arg for arg in argv[1:]),
    ]
    unix = load_config(SAMPLE_CONFIG, environ=env).http.net == "unix"
    address = str(workdir / "registry.sock") if unix else f"127.0.0.1:{free_port()}"
    overrides = {
        **env,
        "REGISTRY_HTTP_ADDR": address,
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(workdir / "data"),
    }
    process = ServerProcess(command, workdir / "dockyard.log", env=overrides, cwd=workdir)
    if unix:
        wait_for_socket(process, Path(address))
        return process, httpx.Client(base_url="http://registry", transport=httpx.HTTPTransport(uds=address))
    process.wait_http(f"http://{address}/v2/")
    return process, httpx.Client(base_url=f"http://{address}")
