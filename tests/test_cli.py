"""The ``dockyard`` command: ``serve`` (with and without a config file, ``--addr``, ``--workers``,
also as ``python -m registry``) and ``check-config``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.integrity.workers import process_group
from tests.support.images import digest_of
from tests.support.launcher import CLEAN_ENV, DOCKYARD, Launched, Launcher, write_config
from tests.support.processes import free_port
from tests.support.pushing import expect, push_blob

PYTHON_M = [sys.executable, "-m", "registry"]
COMMANDS = {"dockyard": [DOCKYARD], "python-m-registry": PYTHON_M}


def run_command(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKYARD, *args],
        cwd=cwd,
        env={**CLEAN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _blob_file(root: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return root / "docker/registry/v2/blobs" / algorithm / hex_[:2] / hex_ / "data"


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_serve_without_config_runs_the_embedded_default(
    launch: Launcher, tmp_path: Path, command: list[str]
) -> None:
    """Data under ./data of the working directory, deletes enabled."""
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    registry = launch([], cwd=workdir, command=command)
    data = os.urandom(1000)
    with registry.client() as client:
        digest = push_blob(client, "cli/default", data)
        assert _blob_file(workdir / "data", digest).read_bytes() == data
        expect(client.delete(f"/v2/cli/default/blobs/{digest}"), 202)
        assert client.head(f"/v2/cli/default/blobs/{digest}").status_code == 404
    assert f"serving filesystem storage on 127.0.0.1:{registry.port}" in registry.log()
    assert sorted(p.name for p in workdir.iterdir()) == ["data"]


def test_embedded_default_listens_where_the_environment_says(launch: Launcher, tmp_path: Path) -> None:
    """No file and no ``--addr``: the default's http.addr, overridden by REGISTRY_HTTP_ADDR."""
    port = free_port()
    registry = launch([], env={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}, port=port, pass_addr=False)
    with registry.client() as client:
        expect(client.get("/v2/"), 200)
    assert f"127.0.0.1:{port}" in registry.log()


def test_serve_listens_on_the_config_address_without_addr_option(launch: Launcher, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "config.yml",
        {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "root")}},
            "http": {"addr": f"127.0.0.1:{port}"},
        },
    )
    registry = launch([str(config)], port=port, pass_addr=False)
    with registry.client() as client:
        digest = push_blob(client, "cli/addr", b"addr")
    assert _blob_file(tmp_path / "root", digest).read_bytes() == b"addr"


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_option_starts_that_many_worker_processes(
    launch: Launcher, tmp_path: Path, workers: int
) -> None:
    registry = launch(["--workers", str(workers)], cwd=tmp_path)
    _expect_workers(registry, workers, "--workers")


def test_without_workers_setting_one_worker_per_usable_cpu(launch: Launcher, tmp_path: Path) -> None:
    registry = launch([], cwd=tmp_path)
    _expect_workers(registry, len(os.sched_getaffinity(0)), "one per usable CPU")


def test_affinity_to_one_cpu_gives_one_worker(launch: Launcher, tmp_path: Path) -> None:
    """``taskset -c 0``, as a cpuset or ``docker run --cpuset-cpus`` would also restrict it."""
    registry = launch([], cwd=tmp_path, command=["taskset", "-c", "0", DOCKYARD])
    _expect_workers(registry, 1, "one per usable CPU")


def test_http_workers_sets_the_count_and_the_option_overrides_it(launch: Launcher, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yml",
        {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "root")}},
            "http": {"workers": 3},
        },
    )
    _expect_workers(launch([str(config)]), 3, "http.workers")
    _expect_workers(launch([str(config), "--workers", "1"]), 1, "--workers")
    from_environment = launch(
        [str(config)], env={"REGISTRY_HTTP_WORKERS": "2"}, command=["taskset", "-c", "0", DOCKYARD]
    )
    _expect_workers(from_environment, 2, "http.workers")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU runs one worker: nothing to follow")
def test_one_worker_per_cpu_runs_short_calls_on_the_event_loops_cpu(launch: Launcher, tmp_path: Path) -> None:
    cpus = os.sched_getaffinity(0)
    registry = launch([], cwd=tmp_path)
    _expect_workers(registry, len(cpus), "one per usable CPU")
    assert "each one's short calls on its event loop's CPU" in registry.log()
    _make_short_calls(registry)
    threads = _thread_affinities(registry)
    assert any(len(placed) == 1 for placed in threads), "no thread followed its event loop's CPU"
    # The event loops themselves move freely.
    assert all(os.sched_getaffinity(pid) == cpus for pid in _worker_pids(registry))


@pytest.mark.parametrize(
    ("args", "http"),
    [(["--workers", "3"], {}), ([], {"loopaffinity": False})],
    ids=["3-workers", "loopaffinity-false"],
)
def test_other_worker_counts_or_loopaffinity_false_leave_every_cpu_to_every_thread(
    launch: Launcher, tmp_path: Path, args: list[str], http: dict[str, bool]
) -> None:
    cpus = os.sched_getaffinity(0)
    config = write_config(
        tmp_path / "config.yml",
        {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path / "root")}}, "http": http},
    )
    registry = launch([str(config), *args])
    _expect_workers(registry, 3 if args else len(cpus), "--workers" if args else "one per usable CPU")
    assert "short calls on its event loop's CPU" not in registry.log()
    _make_short_calls(registry)
    assert all(placed == cpus for placed in _thread_affinities(registry))


def _make_short_calls(registry: Launched) -> None:
    """Requests whose writes and reads take short thread calls, on every worker."""
    with registry.client() as client:
        for number in range(20):
            source = f"cli/short-calls-{number}"
            digest = push_blob(client, source, os.urandom(100))
            expect(client.post(f"/v2/cli/other-{number}/blobs/uploads/?mount={digest}&from={source}"), 201)


def _thread_affinities(registry: Launched) -> list[set[int]]:
    """The CPUs each thread of each worker may run on."""
    threads = [
        int(task.name)
        for pid in _worker_pids(registry) or [registry.process.pid]
        for task in Path(f"/proc/{pid}/task").iterdir()
    ]
    affinities = []
    for thread in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            affinities.append(os.sched_getaffinity(thread))
    return affinities


def _expect_workers(registry: Launched, workers: int, chosen_by: str) -> None:
    """``registry`` runs ``workers`` worker processes (one runs in the main process), as its log
    says, and each serves."""
    deadline = time.monotonic() + 30  # the first worker answers before the others have started
    while registry.log().count("Application startup complete") < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"with {workers} workers ({chosen_by})" in registry.log()
    spawned = _worker_pids(registry)
    if workers == 1:
        assert spawned == []
    else:
        assert len(spawned) == workers
    assert registry.log().count("Started server process") == workers
    with registry.client() as client:
        for _ in range(10):
            expect(client.get("/v2/"), 200)


def _worker_pids(registry: Launched) -> list[int]:
    return [pid for pid in process_group(registry.process.pid) if _parent(pid) == registry.process.pid]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return 0


def test_check_config_accepts_a_valid_config(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "ok.yml",
        {
            "version": "0.1",
            "log": {"level": "info", "formatter": "json"},
            "storage": {
                "filesystem": {"rootdirectory": str(tmp_path / "root")},
                "delete": {"enabled": True},
                "maintenance": {
                    "uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False}
                },
            },
            "http": {"addr": "127.0.0.1:5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        },
    )
    result = run_command(["check-config", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{config}: OK" in result.stdout
    assert "warning" not in result.stdout + result.stderr
    assert not (tmp_path / "root").exists()  # checking creates nothing


def test_check_config_names_unsupported_keys_in_one_warning(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "extra.yml",
        {
            "version": 0.1,
            "storage": {
                "filesystem": {"rootdirectory": str(tmp_path)},
                "cache": {"blobdescriptor": "redis"},  # no Redis here: no cache, with a warning
            },
            "notifications": {"endpoints": []},
            "redis": {"addr": "localhost:6379"},
            "http": {"addr": ":5000", "http2": {"disabled": False}},
        },
    )
    result = run_command(["check-config", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, result.stdout
    for key in ("redis", "storage.cache", "http.http2"):
        assert key in warnings[0]
    assert "notifications" not in warnings[0]  # supported


BROKEN = """\
version: 0.2
log:
  level: loud
  formatter: xml
storage:
  filesystem:
    rootdirectory: {root}
    bogus: 1
  delete:
    enabled: maybe
  maintenance:
    uploadpurging:
      age: banana
http:
  addr: nonsense
  host: not-a-url
catalog:
  maxentries: -1
validation:
  manifests:
    urls:
      allow: ["("]
"""
BROKEN_KEYS = (
    "version",
    "log.level",
    "log.formatter",
    "bogus",
    "storage.delete.enabled",
    "uploadpurging.age",
    "http.addr",
    "http.host",
    "catalog.maxentries",
    "validation.manifests.urls.allow",
)


def test_check_config_lists_every_problem_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "broken.yml", BROKEN.format(root=tmp_path / "root"))
    result = run_command(["check-config", str(config)], tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    missing = [key for key in BROKEN_KEYS if key not in output]
    assert missing == [], output
    assert "Traceback" not in output


def test_serve_refuses_a_broken_config_listing_every_problem(tmp_path: Path) -> None:
    config = write_config(tmp_path / "broken.yml", BROKEN.format(root=tmp_path / "root"))
    result = subprocess.run(
        [DOCKYARD, "serve", str(config), "--addr", f"127.0.0.1:{free_port()}"],
        cwd=tmp_path,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert [key for key in BROKEN_KEYS if key not in output] == [], output
    assert "Traceback" not in output
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("version: 0.1\nstorage: [unclosed\n", "YAML"),
        ("- just\n- a list\n", "mapping"),
        ("version: 0.1\n", "storage"),
    ],
    ids=["missing-file", "invalid-yaml", "not-a-mapping", "no-storage"],
)
def test_check_config_reports_unusable_files(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "config.yml"
    if content is not None:
        path.write_text(content)
    result = run_command(["check-config", str(path)], tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_sees_environment_overrides(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "ok.yml", {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path)}}}
    )
    assert run_command(["check-config", str(config)], tmp_path).returncode == 0
    result = run_command(["check-config", str(config)], tmp_path, {"REGISTRY_LOG_LEVEL": "shouting"})
    assert result.returncode != 0
    assert "log.level" in result.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["serve", "--workers", "many"], ["check-config"], ["frobnicate"]],
    ids=["no-command", "bad-workers", "check-without-file", "unknown-command"],
)
def test_usage_errors_exit_with_usage(tmp_path: Path, args: list[str]) -> None:
    result = run_command(args, tmp_path)
    assert result.returncode == 2
    assert "usage: dockyard" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_both_commands(tmp_path: Path) -> None:
    result = run_command(["--help"], tmp_path)
    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "check-config" in result.stdout
    serve_help = run_command(["serve", "--help"], tmp_path).stdout
    assert "--addr" in serve_help
    assert "--workers" in serve_help


def test_blob_pushed_through_default_is_served_back(launch: Launcher, tmp_path: Path) -> None:
    registry = launch([], cwd=tmp_path)
    data = os.urandom(5000)
    with registry.client() as client:
        digest = push_blob(client, "cli/roundtrip", data)
        assert digest == digest_of(data)
        assert expect(client.get(f"/v2/cli/roundtrip/blobs/{digest}"), 200).content == data


@pytest.mark.parametrize(
    "addr", ["nonsense", "127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:", "[::1]"]
)
def test_serve_refuses_a_bad_addr(tmp_path: Path, addr: str) -> None:
    """A port out of range must not be wrapped into some other port."""
    result = subprocess.run(
        [DOCKYARD, "serve", "--addr", addr],
        cwd=tmp_path,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()
