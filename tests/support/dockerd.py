"""A private containerd + dockerd (Debian's docker.io) with every bit of state in one folder, and
the ``dockerd`` fixture: one such daemon for the whole test session.

Nothing here borrows a system daemon: containerd and dockerd get their own sockets, data and exec
roots under ``workdir``, no iptables/bridge changes, and are stopped by PID. Registries on
127.0.0.0/8 are reachable over plain HTTP without ``--insecure-registry``.

Docker treats every registry on 127.0.0.0/8 as insecure and skips certificate checks there, so
dockerd runs in a private mount namespace where ``PRIVATE_HOSTNAME`` names ::1 (an /etc/hosts of
its own) and ``/etc/docker`` is a folder under ``workdir``: ``trust`` installs a CA where docker's
real ``certs.d`` lookup finds it, with nothing written to the machine's /etc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from .processes import STARTS_WITHIN, ServerProcess

PRIVATE_HOSTNAME = "registry.dockyard.test"
"""Resolves to ::1 inside the test dockerd only: a registry name docker checks certificates for."""


def docker_cli() -> str:
    """The Debian package's CLI (``docker.io``) if present, else ``docker`` from PATH."""
    debian = Path("/usr/bin/docker")
    if debian.exists():
        return str(debian)
    found = shutil.which("docker")
    if found is None:
        raise RuntimeError("the docker CLI is not installed (Debian package docker.io)")
    return found


class Dockerd:
    """containerd + dockerd under ``workdir``; ``docker()`` runs the CLI against it."""

    def __init__(self, workdir: Path, daemon_config: Mapping[str, Any] | None = None) -> None:
        """``daemon_config`` is dockerd's daemon.json (e.g. ``registry-mirrors``)."""
        self.workdir = workdir
        self.daemon_config = dict(daemon_config or {})
        self.containerd: ServerProcess | None = None
        self.dockerd: ServerProcess | None = None
        self.storage_driver = ""

    @property
    def socket(self) -> Path:
        return self.workdir / "docker.sock"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "c.sock"

    @property
    def etc_docker(self) -> Path:
        """What dockerd sees as ``/etc/docker``."""
        return self.workdir / "etc-docker"

    @property
    def env(self) -> dict[str, str]:
        """Environment for the docker CLI: this daemon, a private client config, no BuildKit."""
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.workdir / "dockercfg"),
            "DOCKER_BUILDKIT": "0",
        }

    def trust(self, host: str, ca_cert: Path | None) -> None:
        """Install ``ca_cert`` as dockerd's ``/etc/docker/certs.d/<host>/ca.crt``; None removes it."""
        ca_file = self.etc_docker / "certs.d" / host / "ca.crt"
        if ca_cert is None:
            ca_file.unlink(missing_ok=True)
            return
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        ca_file.write_bytes(ca_cert.read_bytes())

    def start(self) -> Dockerd:
        self._start_containerd()
        for driver in ("overlay2", "vfs"):  # vfs where the filesystem cannot host overlay2
            if self._start_dockerd(driver):
                self.storage_driver = driver
                return self
        log = self.dockerd.log() if self.dockerd else ""
        self.stop()
        raise RuntimeError(f"dockerd did not start with overlay2 or vfs:\n{log[-4000:]}")

    def _start_containerd(self) -> None:
        state = self.workdir / "containerd"
        state.mkdir(parents=True, exist_ok=True)
        config = state / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{state / "root"}"\n'
            f'state = "{state / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.containerd_socket}"\n'
            "[ttrpc]\n"
            f'  address = "{self.containerd_socket}.ttrpc"\n'
        )
        self.containerd = ServerProcess(["containerd", "--config", str(config)], state / "containerd.log")
        deadline = time.monotonic() + STARTS_WITHIN
        while not self.containerd_socket.exists():
            if not self.containerd.running() or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start:\n{self.containerd.log()[-4000:]}")
            time.sleep(0.05)

    def _private_etc(self) -> list[str]:
        """The command that runs dockerd with its own /etc/hosts and /etc/docker."""
        (self.etc_docker / "certs.d").mkdir(parents=True, exist_ok=True)
        hosts = self.workdir / "hosts"
        hosts.write_text(Path("/etc/hosts").read_text() + f"\n::1 {PRIVATE_HOSTNAME}\n")
        # unshare execs dockerd in a new mount namespace whose bind mounts the machine never sees.
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/docker && shift && exec "$@"',
            str(hosts), str(self.etc_docker),
        ]  # fmt: skip

    def _start_dockerd(self, storage_driver: str) -> bool:
        """Start dockerd; False if it exits early (storage driver unusable here)."""
        daemon_json = self.workdir / "daemon.json"
        daemon_json.write_text(json.dumps(self.daemon_config))  # never read /etc/docker/daemon.json
        (self.workdir / "dockercfg").mkdir(exist_ok=True)
        command = [
            *self._private_etc(),
            "dockerd",
            "--config-file",
            str(daemon_json),
            "--containerd",
            str(self.containerd_socket),
            "--data-root",
            str(self.workdir / f"docker-{storage_driver}"),
            "--exec-root",
            str(self.workdir / "dexec"),
            "-H",
            f"unix://{self.socket}",
            "--pidfile",
            str(self.workdir / "docker.pid"),
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver",
            storage_driver,
        ]
        self.dockerd = ServerProcess(command, self.workdir / f"dockerd-{storage_driver}.log")
        transport = httpx.HTTPTransport(uds=str(self.socket))
        deadline = time.monotonic() + STARTS_WITHIN
        with httpx.Client(transport=transport, base_url="http://docker", timeout=2) as client:
            while time.monotonic() < deadline:
                if not self.dockerd.running():
                    self.dockerd.stop()
                    self.dockerd = None
                    return False
                try:
                    if client.get("/_ping").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"dockerd did not answer in {STARTS_WITHIN:g}s:\n{self.dockerd.log()[-4000:]}")

    def docker(
        self,
        *args: str,
        check: bool = True,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` (``stdin``: e.g. a ``--password-stdin``); on failure raise with the
        command's output."""
        result = subprocess.run(
            [docker_cli(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def stop(self) -> None:
        """Stop dockerd first (it talks to containerd while shutting down), then containerd."""
        for process in (self.dockerd, self.containerd):
            if process is not None:
                process.stop(timeout=30)
        self.dockerd = self.containerd = None


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """One private dockerd for the session, started the first time a test needs it."""
    daemon = Dockerd(tmp_path_factory.mktemp("dockerd")).start()
    yield daemon
    daemon.stop()
