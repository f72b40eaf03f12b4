"""CPU time and resident memory of process trees, read from /proc."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's supervisor and every worker)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids``, including children they have reaped (a restarted worker)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 of stat (index 11-14 here).
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def thread_cpu_seconds(pids: list[int]) -> dict[tuple[int, int], float]:
    """CPU seconds of every thread of ``pids``, by (pid, thread id)."""
    threads = {}
    for pid in pids:
        try:
            tids = [int(tid) for tid in os.listdir(PROC / str(pid) / "task")]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for tid in tids:
            try:
                text = (PROC / str(pid) / "task" / str(tid) / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = text[text.rindex(")") + 2 :].split()
            threads[(pid, tid)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return threads


def rss_of(pid: int) -> int:
    try:
        resident = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return resident * PAGE_SIZE


def describe(pid: int) -> str:
    """A short name for a server process: its command line, abbreviated."""
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return f"pid {pid}"
    text = " ".join(arg.decode(errors="replace") for arg in argv if arg)
    for marker, name in (
        ("resource_tracker", "multiprocessing resource tracker"),
        ("multiprocessing.spawn", "worker (multiprocessing spawn)"),
    ):
        if marker in text:
            return name
    return text if len(text) <= 70 else text[:67] + "..."


def own_cpu_seconds() -> float:
    """CPU of this process (the benchmark client's threads) and of reaped children (wrk)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine_task_seconds() -> float:
    """CPU seconds all processes ran (user + system, summed over cores) since boot.

    Interrupt time is left out: most of it is the loopback traffic of the workload itself.
    """
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(v) for v in fields[:3])
    return (user + nice + system) / CLOCK_TICKS


class RssSampler:
    """Samples the summed RSS of each watched process tree in a background thread.

    Besides the peak of the sum (what a machine must provide), it keeps each process's own
    peak, to tell the supervisor's share from the workers'.
    """

    def __init__(self, interval: float = 0.05, tree_refresh: float = 1.0) -> None:
        self._interval = interval
        self._tree_refresh = tree_refresh
        self._roots: dict[str, int] = {}
        self._trees: dict[str, list[int]] = {}
        self._peaks: dict[str, int] = {}
        self._process_peaks: dict[str, dict[int, tuple[str, int]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, name: str, root_pid: int) -> None:
        with self._lock:
            self._roots[name] = root_pid
            self._trees[name] = process_tree(root_pid)
            self._peaks[name] = 0
            self._process_peaks[name] = {}

    def watching(self, name: str) -> bool:
        with self._lock:
            return name in self._roots

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def tree(self, name: str) -> list[int]:
        with self._lock:
            return list(self._trees[name])

    def reset_peak(self, name: str) -> None:
        with self._lock:
            self._peaks[name] = self._sample(name)

    def peak(self, name: str) -> int:
        with self._lock:
            return max(self._peaks[name], self._sample(name))

    def process_peaks(self, name: str) -> list[tuple[str, int]]:
        """(description, peak RSS) of every process the server ever had, largest first."""
        with self._lock:
            peaks = list(self._process_peaks[name].values())
        return sorted(peaks, key=lambda item: -item[1])

    def _sample(self, name: str) -> int:
        total = 0
        known = self._process_peaks[name]
        for pid in self._trees[name]:
            rss = rss_of(pid)
            total += rss
            if pid not in known:
                known[pid] = (describe(pid), rss)
            elif rss > known[pid][1]:
                known[pid] = (known[pid][0], rss)
        return total

    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            with self._lock:
                if now >= next_refresh:
                    self._trees = {name: process_tree(pid) for name, pid in self._roots.items()}
                    next_refresh = now + self._tree_refresh
                for name in self._trees:
                    self._peaks[name] = max(self._peaks[name], self._sample(name))
