"""Stock clients against an authenticating registry: docker login/logout/push/pull, podman login,
skopeo --creds, with htpasswd and with token auth from the built-in token server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.containers import ContainerTools
from tests.support.dockerd import Dockerd
from tests.support.images import busybox_rootfs_tar, random_image, write_dir_layout
from tests.support.registry import RunningRegistry, StartRegistry

from .registries import htpasswd_registry, token_registry
from .servers import PASSWORDS, TokenServerProcess

pytestmark = [pytest.mark.clients, pytest.mark.slow]


@pytest.fixture(scope="module", params=["htpasswd", "token"])
def registry(
    request: pytest.FixtureRequest, start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> RunningRegistry:
    if request.param == "htpasswd":
        return htpasswd_registry(start_registry, tmp_path_factory.mktemp("clients-htpasswd"))
    return token_registry(start_registry, request.getfixturevalue("token_server"))


@pytest.fixture(scope="module")
def token_mode_registry(start_registry: StartRegistry, token_server: TokenServerProcess) -> RunningRegistry:
    return token_registry(start_registry, token_server)


def docker_login(
    dockerd: Dockerd, registry: RunningRegistry, user: str, password: str = ""
) -> subprocess.CompletedProcess[str]:
    secret = password or PASSWORDS[user]
    return dockerd.docker(
        "login", "--username", user, "--password-stdin", registry.host, stdin=secret, check=False
    )


def docker_logged_in(dockerd: Dockerd, registry: RunningRegistry, user: str) -> None:
    result = docker_login(dockerd, registry, user)
    assert result.returncode == 0, result.stderr
    assert "Login Succeeded" in result.stdout


def import_image(dockerd: Dockerd, reference: str, tmp_path: Path) -> None:
    rootfs = busybox_rootfs_tar(
        tmp_path / f"rootfs-{os.urandom(4).hex()}.tar", {"etc/nonce": os.urandom(4096)}
    )
    dockerd.docker("import", str(rootfs), reference)


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    return (result.stdout + result.stderr).lower()


def test_docker_login_push_pull_logout(registry: RunningRegistry, dockerd: Dockerd, tmp_path: Path) -> None:
    wrong = failed(docker_login(dockerd, registry, "alice", "not-the-password"))
    assert "unauthorized" in wrong
    docker_logged_in(dockerd, registry, "alice")
    stored = json.loads((Path(dockerd.env["DOCKER_CONFIG"]) / "config.json").read_text())["auths"]
    assert registry.host in stored

    reference = f"{registry.host}/alice/docker:v1"
    import_image(dockerd, reference, tmp_path)
    dockerd.docker("push", reference)
    dockerd.docker("rmi", reference)
    dockerd.docker("pull", reference)

    dockerd.docker("logout", registry.host)
    dockerd.docker("rmi", reference)
    assert failed(dockerd.docker("pull", reference, check=False))
    assert (
        registry.host
        not in json.loads((Path(dockerd.env["DOCKER_CONFIG"]) / "config.json").read_text())["auths"]
    )


def test_docker_permissions_per_repository(
    token_mode_registry: RunningRegistry, dockerd: Dockerd, tmp_path: Path
) -> None:
    registry = token_mode_registry
    host = registry.host
    docker_logged_in(dockerd, registry, "alice")
    # docker login went through the token server with offline_token: the daemon keeps a refresh
    # token (identity token) instead of the password, and uses it for every push and pull.
    stored = json.loads((Path(dockerd.env["DOCKER_CONFIG"]) / "config.json").read_text())["auths"][host]
    assert stored.get("identitytoken")
    for reference in (f"{host}/alice/app:v1", f"{host}/public/tool:v1"):
        import_image(dockerd, reference, tmp_path)
        dockerd.docker("push", reference)

    docker_logged_in(dockerd, registry, "bob")
    dockerd.docker("tag", f"{host}/alice/app:v1", f"{host}/alice/app:by-bob")
    assert "denied" in failed(dockerd.docker("push", f"{host}/alice/app:by-bob", check=False))
    dockerd.docker("tag", f"{host}/alice/app:v1", f"{host}/bob/app:v1")
    dockerd.docker("push", f"{host}/bob/app:v1")

    docker_logged_in(dockerd, registry, "reader")
    dockerd.docker("rmi", f"{host}/alice/app:v1")
    dockerd.docker("pull", f"{host}/alice/app:v1")
    dockerd.docker("tag", f"{host}/alice/app:v1", f"{host}/alice/app:by-reader")
    assert "denied" in failed(dockerd.docker("push", f"{host}/alice/app:by-reader", check=False))

    dockerd.docker("logout", host)
    for reference in (f"{host}/public/tool:v1", f"{host}/alice/app:v1"):
        dockerd.docker("rmi", reference)
    dockerd.docker("pull", f"{host}/public/tool:v1")  # anonymous pull where configured
    assert failed(dockerd.docker("pull", f"{host}/alice/app:v1", check=False))


def test_podman_login_and_skopeo_creds(
    registry: RunningRegistry, container_tools: ContainerTools, tmp_path: Path
) -> None:
    host = registry.host
    layout = write_dir_layout(tmp_path / "image", random_image(layers=2, layer_size=8192))
    login = container_tools.run(
        "podman",
        "login",
        "--username",
        "alice",
        "--password-stdin",
        host,
        stdin=PASSWORDS["alice"],
        check=False,
    )
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    container_tools.skopeo("copy", f"dir:{layout}", f"docker://{host}/alice/skopeo:v1")  # the stored login
    container_tools.podman("logout", host)
    assert failed(container_tools.skopeo("inspect", "--raw", f"docker://{host}/alice/skopeo:v1", check=False))

    alice = f"alice:{PASSWORDS['alice']}"
    container_tools.skopeo("inspect", "--raw", "--creds", alice, f"docker://{host}/alice/skopeo:v1")
    bad = container_tools.skopeo(
        "inspect", "--raw", "--creds", "alice:wrong", f"docker://{host}/alice/skopeo:v1", check=False
    )
    assert "unauthorized" in failed(bad)
    container_tools.skopeo("copy", "--dest-creds", alice, f"dir:{layout}", f"docker://{host}/alice/skopeo:v2")
    container_tools.skopeo("delete", "--creds", alice, f"docker://{host}/alice/skopeo:v2")
    assert failed(
        container_tools.skopeo(
            "inspect", "--raw", "--creds", alice, f"docker://{host}/alice/skopeo:v2", check=False
        )
    )


def test_skopeo_rights_in_token_mode(
    token_mode_registry: RunningRegistry, container_tools: ContainerTools, tmp_path: Path
) -> None:
    host = token_mode_registry.host
    layout = write_dir_layout(tmp_path / "image", random_image(layers=1, layer_size=4096))
    alice, bob, reader = (f"{user}:{PASSWORDS[user]}" for user in ("alice", "bob", "reader"))
    container_tools.skopeo("copy", "--dest-creds", alice, f"dir:{layout}", f"docker://{host}/alice/rights:v1")
    assert failed(
        container_tools.skopeo(
            "copy", "--dest-creds", bob, f"dir:{layout}", f"docker://{host}/alice/rights:bob", check=False
        )
    )
    container_tools.skopeo("copy", "--dest-creds", bob, f"dir:{layout}", f"docker://{host}/bob/rights:v1")
    pulled = tmp_path / "pulled"
    container_tools.skopeo("copy", "--src-creds", reader, f"docker://{host}/alice/rights:v1", f"dir:{pulled}")
    assert (pulled / "manifest.json").read_bytes() == (layout / "manifest.json").read_bytes()
    assert failed(
        container_tools.skopeo("delete", "--creds", reader, f"docker://{host}/alice/rights:v1", check=False)
    )
    assert failed(
        container_tools.skopeo(
            "copy", "--dest-creds", reader, f"dir:{layout}", f"docker://{host}/alice/rights:r", check=False
        )
    )
    container_tools.skopeo(
        "inspect", "--raw", "--creds", reader, f"docker://{host}/alice/rights:v1"
    )  # still there
