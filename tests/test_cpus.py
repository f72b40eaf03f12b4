"""How many CPUs the registry may use: the cgroup quota as container runtimes and systemd write
it, read from a ``/proc/self`` and a file tree laid out in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.cpus import cgroup_cpu_quota, usable_cpus

V2_MOUNT = (
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
)
V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "33 31 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory\n"
)


class Machine:
    """A ``/proc/self`` (``proc``) and a root file tree (``root``) for the functions to read."""

    def __init__(self, tmp_path: Path, mountinfo: str, cgroup: str) -> None:
        self.proc = tmp_path / "proc"
        self.root = tmp_path / "root"
        self.proc.mkdir(parents=True)
        self.root.mkdir(parents=True)
        (self.proc / "mountinfo").write_text(mountinfo)
        (self.proc / "cgroup").write_text(cgroup)

    def write(self, path: str, text: str) -> None:
        file = self.root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)

    def quota(self) -> float | None:
        return cgroup_cpu_quota(self.proc, self.root)

    def cpus(self) -> int:
        return usable_cpus(self.proc, self.root)


def test_v2_quota_of_a_container(tmp_path: Path) -> None:
    """``docker run --cpus 1.5`` with a cgroup namespace: the group is the mount's top."""
    machine = Machine(tmp_path, V2_MOUNT, "0::/\n")
    machine.write("/sys/fs/cgroup/cpu.max", "150000 100000\n")
    assert machine.quota() == 1.5
    assert machine.cpus() == min(2, len(os.sched_getaffinity(0)))  # rounded up, never above affinity


def test_v2_without_quota(tmp_path: Path) -> None:
    machine = Machine(tmp_path, V2_MOUNT, "0::/system.slice/dockyard.service\n")
    machine.write("/sys/fs/cgroup/system.slice/dockyard.service/cpu.max", "max 100000\n")
    assert machine.quota() is None
    assert machine.cpus() == len(os.sched_getaffinity(0))


def test_v2_smallest_quota_on_the_way_up_wins(tmp_path: Path) -> None:
    """systemd's ``CPUQuota=`` on a slice limits every service in it."""
    machine = Machine(tmp_path, V2_MOUNT, "0::/registry.slice/dockyard.service\n")
    machine.write("/sys/fs/cgroup/registry.slice/cpu.max", "100000 100000\n")
    machine.write("/sys/fs/cgroup/registry.slice/dockyard.service/cpu.max", "400000 100000\n")
    assert machine.quota() == 1.0
    assert machine.cpus() == 1


def test_v2_group_outside_the_mounts_view_reads_the_mounts_top(tmp_path: Path) -> None:
    """Without a cgroup namespace a container sees the host's path of its group, while its
    cgroup mount shows that group at the top."""
    mountinfo = V2_MOUNT.replace(" / /sys/fs/cgroup ", " /docker/abc /sys/fs/cgroup ")
    machine = Machine(tmp_path, mountinfo, "0::/docker/abc\n")
    machine.write("/sys/fs/cgroup/cpu.max", "50000 100000\n")
    assert machine.quota() == 0.5
    assert machine.cpus() == 1

    elsewhere = Machine(tmp_path / "other", mountinfo, "0::/kubepods/pod1/c2\n")
    elsewhere.write("/sys/fs/cgroup/cpu.max", "200000 100000\n")
    assert elsewhere.quota() == 2.0


def test_v1_quota(tmp_path: Path) -> None:
    machine = Machine(tmp_path, V1_MOUNTS, "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert machine.quota() == 0.5
    assert machine.cpus() == 1


def test_v1_unlimited(tmp_path: Path) -> None:
    machine = Machine(tmp_path, V1_MOUNTS, "3:cpu,cpuacct:/\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert machine.quota() is None


def test_hybrid_hierarchy_reads_the_v1_cpu_controller(tmp_path: Path) -> None:
    """v1 controllers with an empty v2 hierarchy beside them (``/sys/fs/cgroup/unified``)."""
    mountinfo = V1_MOUNTS + V2_MOUNT.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified ")
    machine = Machine(tmp_path, mountinfo, "3:cpu,cpuacct:/\n0::/\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "300000\n")
    machine.write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    machine.write("/sys/fs/cgroup/unified/cgroup.procs", "1\n")
    assert machine.quota() == 3.0


@pytest.mark.parametrize("content", ["", "garbage\n", "0 100000\n", "100000 0\n", "-5 100000\n"], ids=repr)
def test_unreadable_quota_counts_as_none(tmp_path: Path, content: str) -> None:
    machine = Machine(tmp_path, V2_MOUNT, "0::/\n")
    machine.write("/sys/fs/cgroup/cpu.max", content)
    assert machine.quota() is None
    assert machine.cpus() == len(os.sched_getaffinity(0))


def test_without_proc_the_affinity_decides(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path / "missing", tmp_path) is None
    assert usable_cpus(tmp_path / "missing", tmp_path) == len(os.sched_getaffinity(0))


def test_escaped_mount_point(tmp_path: Path) -> None:
    mountinfo = V2_MOUNT.replace("/sys/fs/cgroup ", "/mnt/cgroup\\040root ")
    machine = Machine(tmp_path, mountinfo, "0::/\n")
    machine.write("/mnt/cgroup root/cpu.max", "100000 100000\n")
    assert machine.quota() == 1.0


def test_this_machine_matches_its_affinity_or_less() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
