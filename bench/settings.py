"""Sizes and counts of the workloads: the issue's numbers, or a scaled-down quick run."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Settings:
    repetitions: int
    blob_size: int = GiB
    chunk_size: int = 16 * MiB
    wrk_seconds: int = 3  # wrk takes whole seconds
    concurrencies: tuple[int, ...] = (1, 16, 64)
    tag_count: int = 16
    layers: int = 200
    layer_min: int = 4 * 1024
    layer_max: int = MiB
    layer_seed: int = 200
    image_connections: int = 8
    pushers: int = 16
    pusher_size: int = 32 * MiB
    catalog_repositories: int = 2000
    catalog_page: int = 100
    new_repositories: int = 2000
    setup_connections: int = 8
    limit_size: int = GiB  # bytes hashed / written / served by nginx for the machine limits
    quick: bool = False

    @property
    def range_start(self) -> int:
        return self.blob_size // 4 + 4097  # deliberately not aligned to pages or chunks

    @property
    def range_length(self) -> int:
        return self.blob_size // 2


def full(repetitions: int = 7) -> Settings:
    return Settings(repetitions=repetitions)


def quick(repetitions: int = 2) -> Settings:
    """About two minutes: same workloads and checks, smaller sizes, short wrk runs."""
    return Settings(
        repetitions=repetitions,
        blob_size=256 * MiB,
        wrk_seconds=1,
        pusher_size=16 * MiB,
        limit_size=256 * MiB,
        new_repositories=500,
        quick=True,
    )
