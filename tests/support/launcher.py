"""``dockyard serve`` started by a test with arguments of its own, and the ``launch`` fixture that
stops every one a test started."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
import yaml

from .processes import STARTS_WITHIN, ServerProcess, free_port

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "DOCKYARD_"))}


class Launched:
    """A ``serve`` process started by a test, stopped by the ``launch`` fixture."""

    def __init__(self, process: ServerProcess, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def log(self) -> str:
        return self.process.log()


class Launcher:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServerProcess] = []

    def __call__(
        self,
        args: Sequence[str],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = (DOCKYARD,),
        port: int | None = None,
        pass_addr: bool = True,
    ) -> Launched:
        """Run ``command serve ARGS --addr 127.0.0.1:PORT`` (``pass_addr=False``: the address must
        come from the configuration) with a clean environment plus ``env``."""
        port = port or free_port()
        addr = ["--addr", f"127.0.0.1:{port}"] if pass_addr else []
        workdir = cwd or self.tmp_path
        process = ServerProcess(
            [*command, "serve", *args, *addr],
            self.tmp_path / f"serve-{len(self.started)}.log",
            env={**CLEAN_ENV, **(env or {})},
            cwd=workdir,
        )
        self.started.append(process)
        process.wait_http(f"http://127.0.0.1:{port}/v2/")
        return Launched(process, port)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.stop_all()


def write_config(path: Path, config: Mapping[str, object] | str) -> Path:
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def wait_for_socket(process: ServerProcess, path: Path, timeout: float = STARTS_WITHIN) -> None:
    """Until a registry listening on the unix socket ``path`` answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"the registry exited early:\n{process.log()[-4000:]}")
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=2) as direct:
                direct.get("http://registry/v2/")
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered on {path}:\n{process.log()[-4000:]}")
