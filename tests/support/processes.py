"""Start and stop the real server processes the tests talk to."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

STARTS_WITHIN = 120.0
"""Bound on a server's start: a loaded machine can take many times the usual second or two; a
server that exits early fails the wait at once."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A child process with its output in a log file, stopped with SIGTERM then SIGKILL."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # its workers die with it on kill()
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = STARTS_WITHIN) -> None:
        """Wait until ``url`` answers any HTTP status; fail with the log if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.command[0]} exited early:\n{self.log()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(url, timeout=2.0, verify=False)
                return
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the process and every worker it started, at once."""
        self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self.running():
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait(timeout=10)
        else:
            self.signal_group(signal.SIGKILL)  # orphaned workers, if any
        self._log.close()
