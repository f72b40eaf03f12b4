"""Whether bringing a download's windows in holds other threads off: ``populate`` over a file in
the 8 MiB windows a download uses (each dropped from the mapping after, as a download does),
cached and cold, in a worker thread, while the main thread sleeps 1 ms at a time.

```sh
.venv/bin/python -m bench.populate_gil FILE                          # this checkout's populate
.venv/bin/python -m bench.populate_gil FILE --source /tmp/before     # another checkout's
```

Per case it prints the windows' wall time, how often the sleeping thread woke (about once per
millisecond when nothing holds the interpreter lock) and its longest and 99th-percentile wait.
``cold`` drops the file from the page cache first (``POSIX_FADV_DONTNEED``).
"""

from __future__ import annotations

import argparse
import importlib
import mmap
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

WINDOW = 8 << 20


def run(populate: Callable[[mmap.mmap, int, int, int], None], path: Path, cold: bool) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if cold:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    took: list[float] = []

    def windows() -> None:
        started = time.perf_counter()
        for start in range(0, size, WINDOW):
            length = min(WINDOW, size - start)
            populate(mapped, start, length, min(size, start + length + WINDOW) - start - length)
            mapped.madvise(mmap.MADV_DONTNEED, start, length)
        took.append(time.perf_counter() - started)

    thread = threading.Thread(target=windows)
    waits: list[float] = []
    last = time.perf_counter()
    thread.start()
    while thread.is_alive():
        time.sleep(0.001)
        now = time.perf_counter()
        waits.append(now - last)
        last = now
    thread.join()
    mapped.close()
    waits.sort()
    return (
        f"{'cold' if cold else 'cached'}: {took[0] * 1000:.0f} ms, {len(waits)} wake-ups, "
        f"longest wait {waits[-1] * 1000:.1f} ms, p99 {waits[int(len(waits) * 0.99)] * 1000:.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.populate_gil", description=__doc__.partition("\n")[0])
    parser.add_argument("file", type=Path, help="a large file (1 GiB or so)")
    parser.add_argument("--source", type=Path, help="another checkout, whose populate to measure")
    args = parser.parse_args(argv)
    if args.source is not None:
        sys.path.insert(0, str(args.source.resolve()))
    populate = importlib.import_module("storage_drivers.filesystem").populate
    for cold in (False, True):
        print(run(populate, args.file, cold))


if __name__ == "__main__":
    main()
