"""``python -m bench.gc_memory [COUNT]``: what garbage collection's blob table and marked set
cost per million blobs, against a dict and a set of ``Digest`` objects.

Every blob gets a size and time in the table; ``MARKED`` of them go in the marked set. The
digests arrive as a walk gives them (a fresh string each); bytes are counted with tracemalloc.
"""

from __future__ import annotations

import gc
import secrets
import sys
import tracemalloc
from collections.abc import Callable

from registry.lifecycle.digests import BlobTable, DigestSet
from registry.references import Digest

MARKED = 0.9
"""The share of blobs a kept manifest refers to."""


def measured(build: Callable[[], object]) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, built


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 1_000_000
    hexes = [secrets.token_hex(32) for _ in range(count)]
    marked = int(count * MARKED)

    def compact() -> object:
        table = BlobTable()
        for index, value in enumerate(hexes):
            table[Digest.parse(f"sha256:{value}")] = (index * 1000, 1.7e9 + index)
        chosen = DigestSet(table)  # as the plan marks: after the walk
        for value in hexes[:marked]:
            chosen.add(Digest.parse(f"sha256:{value}"))
        return table, chosen

    def objects() -> object:
        table: dict[Digest, tuple[int, float]] = {}
        chosen: set[Digest] = set()
        for index, value in enumerate(hexes):
            digest = Digest.parse(f"sha256:{value}")
            table[digest] = (index * 1000, 1.7e9 + index)
            if index < marked:
                chosen.add(Digest.parse(f"sha256:{value}"))
        return table, chosen

    print(f"{count:,} blobs, {marked:,} of them marked (bytes held after the build, tracemalloc):")
    builds = {"BlobTable + DigestSet (raw bytes, a bit per mark)": compact, "dict + set of Digest": objects}
    for label, build in builds.items():
        size, built = measured(build)
        print(f"- {label}: {size / 2**20:.0f} MiB, {size / count:.0f} bytes a blob")
        del built
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
