"""Many clients pushing distinct blobs at once: aggregate MB/s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.api import push_monolithic
from bench.data import Region, UniqueBlob
from bench.measure import Case, Outcome
from bench.servers import Server
from bench.settings import Settings
from bench.workloads.blobs import discard_pushed, verify_stored

REPOSITORY = "bench/pushers"


class ConcurrentPushers:
    def __init__(self, settings: Settings, path: Path) -> None:
        self.settings = settings
        self.path = path
        size = settings.pusher_size
        # Distinct regions of the test file, hashed once; each push adds a unique tail.
        self.regions = [Region.of(path, i * size, size) for i in range(settings.pushers)]

    def setup(self, server: Server) -> None:
        """Nothing to store ahead."""

    def cases(self) -> list[Case]:
        label = (
            f"{self.settings.pushers} concurrent pushers, "
            f"{self.settings.pusher_size >> 20} MiB blob each, POST+PUT"
        )
        return [Case("pushers", label, "MB/s", True, self.push_all, target=1.3)]

    def push_all(self, server: Server) -> Callable[[], Outcome]:
        blobs = [region.unique_blob() for region in self.regions]
        barrier = threading.Barrier(len(blobs) + 1)
        failures: list[BaseException] = []

        def pusher(blob: UniqueBlob) -> None:
            try:
                with server.connect() as connection, self.path.open("rb") as file:
                    barrier.wait()
                    push_monolithic(connection, REPOSITORY, blob, file)
            except BaseException as error:
                failures.append(error)

        def timed() -> Outcome:
            threads = [threading.Thread(target=pusher, args=(blob,)) for blob in blobs]
            for thread in threads:
                thread.start()
            barrier.wait()  # all connected; start the clock as they all start sending
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            if failures:
                raise failures[0]
            for blob in blobs:
                verify_stored(server, REPOSITORY, blob)
            total = sum(blob.size for blob in blobs)
            return Outcome(
                total / elapsed / 1e6,
                {"seconds": elapsed},
                cleanup=discard_pushed(server, REPOSITORY, [blob.digest for blob in blobs]),
            )

        return timed
