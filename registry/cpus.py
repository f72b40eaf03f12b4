"""How many CPUs the registry may use: the CPUs its affinity allows (``taskset``, cpusets),
capped by the CPU quota of its control groups, as container runtimes and systemd's ``CPUQuota``
set it (cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us``).

The control groups are found as the kernel describes them to the process: its memberships in
``/proc/self/cgroup`` and where each hierarchy is mounted in ``/proc/self/mountinfo``. A quota
anywhere between the process's group and the top of the mount counts, the smallest winning.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PROC_SELF = Path("/proc/self")


@dataclass(frozen=True)
class CgroupMount:
    """A mounted cgroup hierarchy that can hold a CPU quota."""

    version: int  # 1 or 2
    root: PurePosixPath  # the group shown at the mount point (its path within the hierarchy)
    point: PurePosixPath  # where it is mounted


def usable_cpus(proc: Path = PROC_SELF, filesystem: Path = Path("/")) -> int:
    """The CPUs this process may use: its affinity, capped by its cgroups' quota rounded up
    (a quota of 1.5 CPUs keeps two workers busy), at least 1. ``proc`` and ``filesystem`` are
    where ``/proc/self`` and ``/`` are read from."""
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(proc, filesystem)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(proc: Path = PROC_SELF, filesystem: Path = Path("/")) -> float | None:
    """CPUs' worth of time per period the process's control groups allow; None without a quota
    (or when the control groups cannot be read, as where ``/proc`` is hidden)."""
    try:
        mounts = cgroup_mounts((proc / "mountinfo").read_text())
        memberships = cgroup_memberships((proc / "cgroup").read_text())
    except OSError:
        return None
    quotas = []
    for mount in mounts:
        group = memberships.get(mount.version)
        if group is None:
            continue
        if group.is_relative_to(mount.root):
            group = PurePosixPath("/", group.relative_to(mount.root))
        else:  # a group outside the mount's view (no cgroup namespace): the mount's top is ours
            group = PurePosixPath("/")
        quota = _quota_along(filesystem / mount.point.relative_to("/"), group, mount.version)
        if quota is not None:
            quotas.append(quota)
    return min(quotas, default=None)


def cgroup_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup v2 mounts and the v1 mounts of the ``cpu`` controller in ``mountinfo``."""
    mounts = []
    for line in mountinfo.splitlines():
        before, separator, after = line.partition(" - ")
        fields, described = before.split(), after.split()
        if not separator or len(fields) < 5 or len(described) < 3:
            continue
        root, point = PurePosixPath(_unescape(fields[3])), PurePosixPath(_unescape(fields[4]))
        filesystem_type, options = described[0], described[2].split(",")
        if filesystem_type == "cgroup2":
            mounts.append(CgroupMount(2, root, point))
        elif filesystem_type == "cgroup" and "cpu" in options:
            mounts.append(CgroupMount(1, root, point))
    return mounts


def cgroup_memberships(cgroup: str) -> dict[int, PurePosixPath]:
    """The process's group in the cgroup v2 hierarchy and in the v1 ``cpu`` hierarchy, by version."""
    groups = {}
    for line in cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path.startswith("/"):
            continue
        if hierarchy == "0" and controllers == "":
            groups[2] = PurePosixPath(path)
        elif "cpu" in controllers.split(","):
            groups[1] = PurePosixPath(path)
    return groups


def _quota_along(mount_point: Path, group: PurePosixPath, version: int) -> float | None:
    """The smallest quota from ``group`` up to the top of the mount."""
    quotas = []
    for level in (group, *group.parents):
        directory = mount_point / level.relative_to("/")
        quota = _v2_quota(directory) if version == 2 else _v1_quota(directory)
        if quota is not None:
            quotas.append(quota)
    return min(quotas, default=None)


def _v2_quota(directory: Path) -> float | None:
    """``cpu.max`` holds ``$MAX $PERIOD``; ``max`` means no limit."""
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else _ratio(int(quota), int(period))
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    """``cpu.cfs_quota_us`` is -1 without a limit; the period is in ``cpu.cfs_period_us``."""
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return _ratio(quota, period)


def _ratio(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for escaped, character in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, character)
    return field
