"""The container image and the compose file.

Images cannot be built here (no container runtime for RUN steps), so the Dockerfile is read and
checked, its command and health check are run directly with the shipped config, and the compose
file's references are resolved against the files the nginx tests run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config_reader import parse_duration
from registry.config import load_config
from registry.supervisor import longest_stop
from tests.support.nginx import SHIPPED, SHIPPED_UPSTREAM, TLS_SITE
from tests.support.registry import PROJECT

from .shipped import (
    COMPOSE,
    DOCKERFILE,
    DOCKERIGNORE,
    INSTALLED_CONFIG,
    SAMPLE_CONFIG,
    dockerfile_instructions,
    final_stage,
    run_here,
    sample_config,
)

pytestmark = pytest.mark.nginx


def arguments(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for key, args in stage if key == keyword]


def environment(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for line in arguments(stage, "ENV"):
        for word in shlex.split(line):  # as Docker reads it: NAME="" is an empty value
            name, _, value = word.partition("=")
            env[name] = value
    return env


def healthcheck_argv(stage: list[tuple[str, str]]) -> list[str]:
    (healthcheck,) = arguments(stage, "HEALTHCHECK")
    argv: list[str] = json.loads(healthcheck.split(" CMD ", 1)[1])
    return argv


def test_dockerfile_builds_a_slim_unprivileged_image() -> None:
    instructions = dockerfile_instructions()
    for base in arguments(instructions, "FROM"):
        assert re.fullmatch(r"python:3\.1[1-9]-slim( AS \w+)?", base), base
    stage = final_stage(instructions)
    (user,) = arguments(stage, "USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert arguments(stage, "VOLUME") == [
        json.dumps([sample_config()["storage"]["filesystem"]["rootdirectory"]])
    ]
    listen_port = environment(stage)["REGISTRY_HTTP_ADDR"].rsplit(":", 1)[1]
    assert arguments(stage, "EXPOSE") == [listen_port]
    assert f"127.0.0.1:{listen_port}/readyz" in " ".join(healthcheck_argv(stage))
    assert healthcheck_argv(stage)[0] == "python"  # the slim base has no curl or wget
    copied_config = [a for a in arguments(stage, "COPY") if a.endswith(f" {INSTALLED_CONFIG}")]
    assert copied_config == [f"{SAMPLE_CONFIG.relative_to(PROJECT)} {INSTALLED_CONFIG}"]


def test_dockerfile_copies_only_files_the_context_sends() -> None:
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    checked = set()
    for copy in arguments(dockerfile_instructions(), "COPY"):
        if copy.startswith("--from="):
            continue
        *sources, _ = copy.split()
        for source in sources:
            assert (PROJECT / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by {DOCKERIGNORE.name}"
            checked.add(source.rstrip("/"))
    # The build copies the project's metadata and every package it installs; the image, its config.
    config = str(SAMPLE_CONFIG.relative_to(PROJECT))
    needed = {"pyproject.toml", "registry", "storage_drivers", "auth", config}
    assert needed <= checked, f"COPY lines not found for {sorted(needed - checked)}"


def test_image_command_serves_and_health_check_follows_it(tmp_path: Path) -> None:
    stage = final_stage(dockerfile_instructions())
    (entrypoint,) = arguments(stage, "ENTRYPOINT")
    (cmd,) = arguments(stage, "CMD")
    argv = json.loads(entrypoint) + json.loads(cmd)
    assert argv[1:3] == ["serve", INSTALLED_CONFIG]
    image_env = {name: value for name, value in environment(stage).items() if name != "PATH"}
    # The image listens on TCP (the sample config's unix socket is for nginx on the same host).
    assert image_env["REGISTRY_HTTP_NET"] == "tcp"
    process, client = run_here(argv, image_env, tmp_path)
    listen = environment(stage)["REGISTRY_HTTP_ADDR"].replace("0.0.0.0", "127.0.0.1")
    check = [
        sys.executable,
        *(arg.replace(listen, client.base_url.netloc.decode()) for arg in healthcheck_argv(stage)[1:]),
    ]
    # The sample config's http.accelredirect is for nginx beside the storage: the image sends blobs.
    assert load_config(SAMPLE_CONFIG, environ={}).http.accel_redirect is not None
    assert load_config(SAMPLE_CONFIG, environ=image_env).http.accel_redirect is None
    try:
        started = client.post("/v2/image/check/blobs/uploads/")
        assert started.status_code == 202
        assert (tmp_path / "data" / "docker/registry/v2/repositories/image/check/_uploads").is_dir()
        content = b"a layer the image's registry sends itself"
        digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
        pushed = client.post(f"/v2/image/check/blobs/uploads/?digest={digest}", content=content)
        assert pushed.status_code == 201
        pulled = client.get(f"/v2/image/check/blobs/{digest}")
        assert (pulled.status_code, pulled.content) == (200, content)
        assert "x-accel-redirect" not in pulled.headers
        assert subprocess.run(check, capture_output=True, timeout=30, check=False).returncode == 0
    finally:
        client.close()
        process.stop()
    assert subprocess.run(check, capture_output=True, timeout=30, check=False).returncode != 0


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def volume_map(service: dict[str, Any]) -> dict[str, Path | str]:
    """Container path -> host path (resolved from the compose file's folder) or volume name."""
    mounts: dict[str, Path | str] = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = (COMPOSE.parent / source).resolve() if source.startswith(".") else source
    return mounts


def test_compose_nginx_runs_the_shipped_tls_site() -> None:
    nginx = compose()["services"]["nginx"]
    mounts = volume_map(nginx)
    # The official image includes conf.d/*.conf in http{}; relative paths resolve from /etc/nginx.
    sites = [target for target in mounts if re.fullmatch(r"/etc/nginx/conf\.d/[^/]+\.conf", target)]
    assert [mounts[site] for site in sites] == [TLS_SITE.resolve()]
    assert mounts["/etc/nginx/dockyard"] == (SHIPPED / "dockyard").resolve()
    assert "ssl_certificate tls/registry.crt;" in TLS_SITE.read_text()
    assert "/etc/nginx/tls" in mounts
    assert re.search(r"listen 443 ssl", TLS_SITE.read_text())
    assert nginx["ports"] == ["443:443"]


def test_compose_registry_is_reachable_only_through_nginx() -> None:
    document = compose()
    registry, nginx = document["services"]["registry"], document["services"]["nginx"]
    assert "ports" not in registry
    assert "network_mode" not in registry
    # The registry first: the new socket volume takes the image's /run/dockyard, its user's.
    assert "registry" in nginx["depends_on"]
    assert "/run/dockyard" in " ".join(arguments(final_stage(dockerfile_instructions()), "RUN"))
    build = registry["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE.resolve()

    mounts = volume_map(registry)
    assert mounts[INSTALLED_CONFIG] == SAMPLE_CONFIG.resolve()
    data = sample_config()["storage"]["filesystem"]["rootdirectory"]
    assert mounts[data] in document["volumes"]
    # The registry listens where the shipped site's upstream points, in a volume both mount.
    config = load_config(SAMPLE_CONFIG, environ=registry["environment"])
    assert (config.http.net, f"server unix:{config.http.addr};") == ("unix", SHIPPED_UPSTREAM)
    socket_folder = str(Path(config.http.addr).parent)
    assert mounts[socket_folder] in document["volumes"]
    assert volume_map(nginx)[socket_folder] == mounts[socket_folder]
    # The socket's group (mode 0660) is nginx's in its image, so nginx's workers may connect.
    assert registry["user"] == "dockyard:101"
    # nginx has no copy of the storage here: it relays blobs, as the image's environment says.
    assert data not in volume_map(nginx)
    image_env = environment(final_stage(dockerfile_instructions()))
    running = {**image_env, **registry["environment"]}
    assert load_config(SAMPLE_CONFIG, environ=running).http.accel_redirect is None


def test_compose_health_check_asks_the_registry_on_its_socket(tmp_path: Path) -> None:
    registry = compose()["services"]["registry"]
    test = registry["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]  # the slim base has no curl or wget
    shipped_socket = registry["environment"]["REGISTRY_HTTP_ADDR"]
    process, client = run_here(["dockyard", "serve", INSTALLED_CONFIG], registry["environment"], tmp_path)
    socket_path = str(tmp_path / "registry.sock")
    check = [sys.executable, *(arg.replace(shipped_socket, socket_path) for arg in test[2:])]
    try:
        assert client.get("/readyz").status_code == 200
        ran = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
        assert ran.returncode == 0, ran.stderr
    finally:
        client.close()
        process.stop()
    assert subprocess.run(check, capture_output=True, timeout=30, check=False).returncode != 0


def test_stop_timeouts_allow_the_drain() -> None:
    """Docker kills a container 10 s after SIGTERM unless told otherwise: the compose file and the
    image's documented run command give the registry its whole stop."""
    drain = load_config(SAMPLE_CONFIG, environ={}).http.drain_timeout
    assert parse_duration(compose()["services"]["registry"]["stop_grace_period"]) >= longest_stop(drain)
    documented = re.search(r"docker run .*--stop-timeout (\d+)", DOCKERFILE.read_text())
    assert documented, "the Dockerfile's run command sets no stop timeout"
    assert int(documented.group(1)) >= longest_stop(drain)
