"""Scheduled online garbage collection (``storage.maintenance.garbagecollect``) in the real server:
it collects an unreferenced blob while skopeo pushes and pulls, one worker of a server runs it,
two servers on one root take turns through the lease, read-only mode turns it off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from registry.lifecycle.lease import holding
from storage_drivers.filesystem import FilesystemDriver
from tests.integrity.workers import process_group
from tests.lifecycle.commands import age_tag, blob_file, dockyard, push_beside_collections, push_blob
from tests.support.containers import ContainerTools
from tests.support.images import digest_of, random_image, write_oci_layout
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.served import Served
from tests.support.waiting import until

WAIT = 180.0
"""Bound on waiting for runs to happen on a loaded machine (not a timing assertion)."""
SUMMARY = re.compile(r"garbage collection: marked \d+ blobs .*; removed (\d+) blobs")
SKIPPED = "scheduled garbage collection skipped: another run holds the lease"
ATTEMPTS = 8
"""Pushes of one image a collection may refuse before the test gives up."""


def _schedule(interval: str, grace: str, **extra: Any) -> dict[str, Any]:
    settings = {"enabled": True, "interval": interval, "graceperiod": grace}
    return {"storage": {"maintenance": {"garbagecollect": settings, **extra}}}


def _removed(log: str) -> list[int]:
    """The blobs each run removed, one entry per run's summary line."""
    return [int(match.group(1)) for match in SUMMARY.finditer(log)]


def _orphan(served: Served, repository: str) -> str:
    data = os.urandom(4096)
    digest = digest_of(data)
    push_blob(served.http, repository, data, digest)
    return digest


def _push(tools: ContainerTools, layout: Path, destination: str) -> None:
    """skopeo copy; a push a running collection refused (its blobs were condemned while it
    uploaded) is pushed again, as the refusal tells the client to. A slow machine's push outlasts
    the grace period more often, so it may take a few tries."""
    for _ in range(ATTEMPTS):
        done = tools.skopeo("copy", f"oci:{layout}:image", destination, check=False)
        if done.returncode == 0:
            return
        assert "unknown" in done.stderr.lower(), done.stderr
    raise AssertionError(f"push of {destination} refused {ATTEMPTS} times")


def test_the_server_collects_on_schedule_while_a_client_pushes_and_pulls(
    start_registry: StartRegistry, container_tools: ContainerTools, tmp_path: Path
) -> None:
    registry = start_registry(_schedule("2s", "3s"), workers=2)
    with Served(registry.url) as served:
        orphan = _orphan(served, "sched/app")
        pushed: list[str] = []
        deadline = time.monotonic() + WAIT
        while (registry.root / blob_file(orphan)).exists() or len(_removed(registry.log())) < 2:
            assert time.monotonic() < deadline, registry.log()[-4000:]
            layout = write_oci_layout(tmp_path / f"image-{len(pushed)}", {"image": random_image(layers=2)})
            tag = f"v{len(pushed)}"
            _push(container_tools, layout, f"docker://{registry.host}/sched/app:{tag}")
            pushed.append(tag)
            pulled = tmp_path / f"pulled-{tag}"
            container_tools.skopeo("copy", f"docker://{registry.host}/sched/app:{tag}", f"dir:{pulled}")
        for tag in pushed:
            served.verify_tree("sched/app", tag)
        log = registry.log()
        assert sum(_removed(log)) >= 1, log[-4000:]
        assert SKIPPED not in log  # one worker of the server runs the schedule
        assert "scheduled garbage collection failed" not in log
        usage = served.http.get("/v2/sched/app/_dockyard/usage")
        assert usage.status_code == 200, usage.text
        assert usage.json()["tags"] >= 1


def test_two_servers_on_one_root_take_turns_through_the_lease(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """While another process holds the lease both servers skip their runs; once it is released,
    the orphan goes once, in one run of one server."""
    root = tmp_path / "root"
    first = start_registry(_schedule("2s", "0s"), workers=1, root=root)
    second = start_registry(_schedule("2s", "0s"), workers=1, root=root)
    deadline = time.monotonic() + WAIT

    async def hold_while_both_skip() -> str:
        async with holding(FilesystemDriver(str(root)), "garbage-collect", WAIT):  # renewed
            orphan = await asyncio.to_thread(_orphan, served, "turns/app")
            await asyncio.to_thread(_until_both_skipped, first, second, deadline)
            assert (root / blob_file(orphan)).exists()
        return orphan

    with Served(first.url) as served:
        orphan = asyncio.run(hold_while_both_skip())
        while (root / blob_file(orphan)).exists():
            assert time.monotonic() < deadline, (first.log()[-3000:], second.log()[-3000:])
            time.sleep(0.5)

    def runs_once_the_removal_is_logged() -> list[int] | None:
        # A run logs its summary when its sweep is over, a moment after the orphan went.
        runs = _removed(first.log()) + _removed(second.log())
        return runs if sum(runs) else None

    runs = until(runs_once_the_removal_is_logged, what="for the run's summary")
    assert sum(runs) == 1, runs  # the orphan went once, in one run of one server
    for registry in (first, second):
        assert "scheduled garbage collection failed" not in registry.log()


def _until_both_skipped(first: RunningRegistry, second: RunningRegistry, deadline: float) -> None:
    while SKIPPED not in first.log() or SKIPPED not in second.log():
        assert time.monotonic() < deadline, (first.log()[-3000:], second.log()[-3000:])
        time.sleep(0.5)


def test_the_configured_grace_period_is_the_commands_default(start_registry: StartRegistry) -> None:
    young = start_registry({"storage": {"maintenance": {"garbagecollect": {"graceperiod": "0s"}}}})
    default = start_registry()
    orphans = {}
    for registry in (young, default):
        with Served(registry.url) as served:
            orphans[registry.url] = _orphan(served, "grace/app")
        done = dockyard(registry.config_path, "garbage-collect")
        assert done.returncode == 0, done.stderr
    assert not (young.root / blob_file(orphans[young.url])).exists()
    assert (default.root / blob_file(orphans[default.url])).exists()  # younger than 1h: kept


def test_read_only_mode_turns_the_schedule_off(start_registry: StartRegistry) -> None:
    registry = start_registry(_schedule("1s", "0s", readonly={"enabled": True}))
    with Served(registry.url) as served:
        assert served.status("GET", "/v2/") == 200
    assert "scheduled garbage collection is disabled: the storage is in read-only mode" in registry.log()


def test_scheduled_runs_apply_the_retention_rules(start_registry: StartRegistry) -> None:
    rules = [{"repositories": ["ci/**"], "keep": {"newest": 1}}]
    config = _schedule("2s", "0s", retention=rules)
    config["storage"]["maintenance"]["garbagecollect"]["deleteuntagged"] = True
    registry = start_registry(config)
    with Served(registry.url) as served:
        images = {tag: random_image(layers=1, layer_size=1024) for tag in ("old", "older", "new")}
        for tag, image in images.items():
            push_beside_collections(served, "ci/app", tag, image)
        age_tag(registry.root, "ci/app", "older", 20 * 24 * 3600)
        age_tag(registry.root, "ci/app", "old", 10 * 24 * 3600)
        deadline = time.monotonic() + WAIT
        while served.tags("ci/app") != ["new"]:
            assert time.monotonic() < deadline, (served.tags("ci/app"), registry.log()[-4000:])
            time.sleep(0.5)
        while any(
            served.status("GET", f"/v2/ci/app/manifests/{images[tag].digest}") != 404
            for tag in ("old", "older")
        ):
            assert time.monotonic() < deadline, registry.log()[-4000:]
            time.sleep(0.5)
        assert served.verify_tree("ci/app", "new")
        assert "2 tags untagged by retention" in registry.log()


def _lock_holders(workers: list[int]) -> set[int]:
    """The workers holding the scheduler's lock: flock locks on the file the workers inherited
    (``/proc/locks`` names each by its holder's pid and the file's inode)."""
    inodes = set()
    for pid in workers:
        with contextlib.suppress(OSError):  # a worker that just died
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd).startswith("/memfd:dockyard-scheduler"):
                    inodes.add(os.stat(fd).st_ino)
    assert len(inodes) == 1, inodes  # one file, shared by every worker of the server
    (inode,) = inodes
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:
            holders.add(int(fields[4]))
    return holders


def _one_holder(registry: RunningRegistry, deadline: float) -> tuple[int, list[int]]:
    """The one worker holding the scheduler's lock once one does, and every worker."""
    assert registry.process is not None
    while True:
        members = process_group(registry.process.pid)
        workers = [pid for pid in members if pid != registry.process.pid]
        holders = _lock_holders(workers) if len(workers) == registry.workers else set()
        if holders:
            assert len(holders) == 1, holders
            (holder,) = holders
            assert holder in workers
            return holder, workers
        assert time.monotonic() < deadline, registry.log()[-4000:]
        time.sleep(0.2)


def test_one_worker_holds_the_schedule_and_a_killed_server_leaves_no_lock_file(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """The workers choose one scheduler through a lock on a file in no directory: another
    worker takes it when its holder dies, and a server killed outright leaves no file behind
    (in its temporary directory or anywhere)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    registry = start_registry(_schedule("1s", "1h"), workers=3, env={"TMPDIR": str(temporary)})
    deadline = time.monotonic() + WAIT
    holder, workers = _one_holder(registry, deadline)
    while not _removed(registry.log()):  # the holder runs the schedule
        assert time.monotonic() < deadline, registry.log()[-4000:]
        time.sleep(0.2)
    assert _one_holder(registry, deadline)[0] == holder
    os.kill(holder, signal.SIGKILL)  # the supervisor starts another; a survivor takes the lock
    while True:
        successor, workers = _one_holder(registry, deadline)
        if successor != holder:
            break
        time.sleep(0.2)
    assert successor in workers
    registry.kill9()
    assert list(temporary.iterdir()) == []
