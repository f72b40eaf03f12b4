"""Where the registry's time goes: py-spy samples of every server process during one case.

``bench/run --profile DIR`` runs each case once against Dockyard alone while py-spy records the
supervisor and its workers (``--subprocesses``); the collapsed stacks go to ``DIR/<case>.txt``
(feed them to flamegraph.pl or speedscope) and a summary of the hottest functions, by own time and
including callees, to ``DIR/SUMMARY.md``. Sampling costs CPU, so throughput from a profiled run
is not a benchmark result.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

PY_SPY_RATE = 250  # samples per second per process


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


@contextlib.contextmanager
def recording(pid: int, output: Path) -> Iterator[None]:
    """py-spy samples ``pid`` and its children while the block runs."""
    command = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--rate",
        str(PY_SPY_RATE),
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    log = output.with_suffix(".log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)  # py-spy attaches to every process before the work starts
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def thread_report(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float], wall: float
) -> str:
    """Per process: CPU of its main thread (the event loop) and of its other threads, as a share
    of the wall time. A loop near 100% is CPU-bound; a busy case where nothing is near 100% is
    waiting (thread hops, flow control, fsync), not computing."""
    processes: dict[int, tuple[float, float, int]] = {}
    for (pid, tid), seconds in after.items():
        used = seconds - before.get((pid, tid), 0.0)
        loop, others, busy_threads = processes.get(pid, (0.0, 0.0, 0))
        if tid == pid:
            loop += used
        elif used > 0.005:
            others, busy_threads = others + used, busy_threads + 1
        processes[pid] = (loop, others, busy_threads)
    lines = []
    for pid, (loop, others, busy_threads) in sorted(processes.items()):
        if loop + others < 0.01:
            continue
        lines.append(
            f"pid {pid}: event loop thread {loop:.2f} s ({loop / wall:.0%} of wall), "
            f"{busy_threads} other threads {others:.2f} s ({others / wall:.0%})"
        )
    return "\n".join(lines) + "\n"


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (file.py)``: lines of one function together."""
    name, _, location = frame.partition(" (")
    location = location.rstrip(")")
    path = location.rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:]) if path else ""
    return f"{name} ({short})" if short else name


# Leaves where a thread waits for work: py-spy's --nonblocking mode still reports them as active.
IDLE = {"Condition.wait (threading.py)", "Queue.get (queue.py)", "Event.wait (threading.py)"}
# Frames every stack passes through: they say nothing about where the time goes.
PLUMBING = (
    "process ",
    " spawn_main",
    "spawn_main (",
    "_main (",
    "<module>",
    "BaseProcess.",
    "Process.target",
    "subprocess_started",
    "Server.run (uvicorn",
    "asyncio_run",
    "Thread._bootstrap",
    "WorkerThread.run",
)
EVENT_LOOP = "Runner.run (asyncio/runners.py)"


def summarize(collapsed: Path, top: int = 20) -> str:
    """The hottest functions in a py-spy raw file, by own samples and by inclusive samples.

    Time a function spends in C (hashlib, os.write, a uvloop callback) counts as its own time;
    the event loop's own time is uvloop's C code: socket I/O and waiting in epoll.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        total += count
        if frames[-1] in IDLE:
            idle += count
            continue
        own[frames[-1]] += count
        for function in set(frames):
            if not function.startswith(PLUMBING) and function != EVENT_LOOP:
                inclusive[function] += count
    busy = total - idle
    if busy <= 0:
        return "no samples\n"
    lines = [
        f"{total} samples; {idle / total:.0%} idle worker threads left out; "
        f"shares below are of the {busy} others",
        "",
        "own time (C calls count to the Python function making them):",
    ]
    lines += [f"  {n / busy:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "including callees:"]
    lines += [f"  {n / busy:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
