"""podman, buildah and skopeo with private storage and config, plain HTTP to test registries, and
the fixtures that give tests one such environment for the session or an empty one of their own.

All state (image store, run dir, auth file, events log) lives under one folder; the only file
outside it is the system trust policy, which the clients refuse to run without.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

POLICY = Path("/etc/containers/policy.json")
ACCEPT_ANYTHING = {"default": [{"type": "insecureAcceptAnything"}]}

# Where each client subcommand takes its "plain HTTP to this registry" flag.
TLS_FLAGS: dict[tuple[str, ...], list[str]] = {
    ("skopeo", "copy"): ["--src-tls-verify=false", "--dest-tls-verify=false"],
    ("skopeo", "sync"): ["--src-tls-verify=false", "--dest-tls-verify=false"],
    ("skopeo", "inspect"): ["--tls-verify=false"],
    ("skopeo", "list-tags"): ["--tls-verify=false"],
    ("skopeo", "delete"): ["--tls-verify=false"],
    ("buildah", "push"): ["--tls-verify=false"],
    ("buildah", "pull"): ["--tls-verify=false"],
    ("buildah", "manifest", "push"): ["--tls-verify=false"],
    ("podman", "login"): ["--tls-verify=false"],
    ("podman", "push"): ["--tls-verify=false"],
    ("podman", "pull"): ["--tls-verify=false"],
    ("podman", "manifest", "push"): ["--tls-verify=false"],
}


def ensure_trust_policy() -> None:
    """The clients refuse to run without a policy; accept anything if none is installed."""
    if not POLICY.exists():
        POLICY.parent.mkdir(parents=True, exist_ok=True)
        POLICY.write_text(json.dumps(ACCEPT_ANYTHING, indent=2))


class ContainerTools:
    """podman/buildah/skopeo sharing one private image store under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        for name in ("root", "run", "tmp"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        (workdir / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{workdir / "root"}"\n'
            f'runroot = "{workdir / "run"}"\n'
        )
        (workdir / "containers.conf").write_text(
            f'[engine]\nevents_logger = "file"\nevents_logfile_path = "{workdir / "events.log"}"\n'
            f'tmp_dir = "{workdir / "tmp"}"\n'
            f'[network]\nnetwork_config_dir = "{workdir / "networks"}"\n'
        )
        (workdir / "auth.json").write_text('{"auths": {}}')
        ensure_trust_policy()

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(self.workdir / "storage.conf"),
            "CONTAINERS_CONF": str(self.workdir / "containers.conf"),
            "REGISTRY_AUTH_FILE": str(self.workdir / "auth.json"),
            "TMPDIR": str(self.workdir / "tmp"),
        }

    def run(
        self,
        tool: str,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``tool ARGS``, plain-HTTP flags inserted after the subcommand that takes them."""
        command = [tool, *args]
        for prefix, flags in TLS_FLAGS.items():
            if tuple(command[: len(prefix)]) == prefix:
                command[len(prefix) : len(prefix)] = flags
                break
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def skopeo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("skopeo", *args, check=check)

    def buildah(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("buildah", *args, check=check)

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args, check=check)

    def build_scratch_image(
        self,
        name: str,
        layers: Sequence[Mapping[str, bytes]],
        config: Mapping[str, str] | None = None,
        arch: str = "",
        variant: str = "",
    ) -> str:
        """Build ``name`` FROM scratch, one layer per mapping of file path -> content.

        Each layer is one ``buildah from`` + ``buildah copy`` + ``buildah commit`` on top of the
        previous one; nothing runs inside a container. ``config`` holds ``buildah config`` options
        (e.g. ``{"--env": "A=1"}``) applied to the last layer. Returns the image ID.
        """
        files_dir = self.workdir / "build" / os.urandom(6).hex()
        base = "scratch"
        image_id = ""
        for number, files in enumerate(layers):
            layer_dir = files_dir / str(number)
            for relative, content in files.items():
                target = layer_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            from_args = ["from"]
            if arch:
                from_args += ["--arch", arch]
            if variant:
                from_args += ["--variant", variant]
            container = self.buildah(*from_args, base).stdout.strip()
            self.buildah("copy", container, f"{layer_dir}/.", "/")
            if number == len(layers) - 1:
                for option, value in (config or {}).items():
                    self.buildah("config", option, value, container)
            image_id = self.buildah("commit", "--rm", "--quiet", container, name).stdout.strip()
            base = name
        return image_id

    def release_storage(self) -> None:
        """Drop working containers and image mounts so the store's folder can be removed.

        (Not ``podman system reset``: as root it also deletes system-wide network configs.)
        """
        self.buildah("rm", "--all", check=False)
        self.podman("image", "unmount", "--all", check=False)


@pytest.fixture(scope="session")
def container_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerTools]:
    """podman/buildah/skopeo with one private image store and auth file for the session."""
    tools = ContainerTools(tmp_path_factory.mktemp("containers"))
    yield tools
    tools.release_storage()


@pytest.fixture
def fresh_container_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerTools]:
    """podman/buildah/skopeo with an empty image store, to pull into."""
    tools = ContainerTools(tmp_path_factory.mktemp("fresh-containers"))
    yield tools
    tools.release_storage()
