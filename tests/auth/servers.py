"""The built-in token server as its own process (``python -m auth token-server``) for tests."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from auth.keygen import GeneratedKey
from tests.support.processes import ServerProcess, free_port

from .helpers import ISSUER, SERVICE, write_htpasswd

PASSWORDS = {
    "alice": "alice-secret-1",
    "bob": "bob-secret-2",
    "builder": "builder-secret-3",
    "carol": "carol-secret-4",
    "reader": "reader-secret-5",
}
ACL: list[dict[str, Any]] = [
    {"account": "reader", "repository": "*", "actions": ["pull"]},
    {"account": "*", "repository": "${account}/*", "actions": ["*"]},
    {"group": "ci", "repository": "apps/*", "actions": ["pull", "push"]},
    {"anonymous": True, "repository": "public/*", "actions": ["pull"]},
    {"account": "*", "repository": "public/*", "actions": ["pull", "push"]},
    {"account": "alice", "registry": "catalog", "actions": ["*"]},
]


def token_server_section(key: GeneratedKey, htpasswd: Path, **extra: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "service": SERVICE,
        "signingkey": str(key.key_path),
        "certificate": str(key.certificate_path),
        "htpasswd": str(htpasswd),
        "groups": {"ci": ["builder"]},
        "acl": ACL,
        **extra,
    }


@dataclass
class TokenServerProcess:
    workdir: Path
    key: GeneratedKey
    htpasswd: Path
    port: int
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/token"

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()


def start_token_server(workdir: Path, key: GeneratedKey, **extra: Any) -> TokenServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = write_htpasswd(workdir / "htpasswd", PASSWORDS)
    port = free_port()
    section = token_server_section(key, htpasswd, addr=f"127.0.0.1:{port}", **extra)
    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump({"version": 0.1, "tokenserver": section}))
    process = ServerProcess(
        [sys.executable, "-m", "auth", "token-server", str(config)], workdir / "token-server.log"
    )
    process.wait_http(f"http://127.0.0.1:{port}/auth/token")
    return TokenServerProcess(workdir, key, htpasswd, port, process)
