"""Server time of the web interface's pages and of ``/v1/search`` on a large store.

    .venv/bin/python -m bench.ui_pages [--repositories 10000] [--tags 5000] [-n 7] [--root DIR]

Fills a filesystem store through the storage services (``--repositories`` repositories of one
tag each, in 100 namespaces, and one repository with ``--tags`` tags), then asks each page
``-n`` times through the registry's ASGI application in this process, without access control,
so the time is the server's alone (no network, no client). Prints one JSON line per page with
the median and the slowest time, and the target of 100 ms. Before the pages, a usage walk
(``dockyard usage``'s) writes the record the repository list takes sizes from; its time is printed
too. The store goes to a temp dir under
/dev/shm unless ``--root`` names one (kept, and reused when it is already filled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from registry.app import create_app
from registry.config import load_config
from registry.lifecycle.usage import measure as measure_usage
from registry.references import Digest, RepositoryName, Tag
from registry.storage import Storage, paths
from storage_drivers import create_driver
from tests.support.images import random_image

TARGET_MS = 100.0
NAMESPACES = 100
BIG_REPOSITORY = "big/tags"


async def fill(root: Path, repositories: int, tags: int) -> None:
    marker = root / f"filled-{repositories}-{tags}"
    if marker.exists():
        return
    storage = Storage(create_driver("filesystem", {"rootdirectory": str(root)}))
    image = random_image(layers=2, layer_size=4096)
    for blob in image.blobs:
        await storage.driver.put_content(paths.blob_data(Digest.parse(blob.digest)), blob.data)
    limit = asyncio.Semaphore(32)

    async def repository(name: str, tag_names: list[str]) -> None:
        async with limit:
            repo = RepositoryName.parse(name)
            for blob in image.blobs:
                await storage.blobs.mount(repo, None, Digest.parse(blob.digest))
            first, *rest = tag_names
            digest, _ = await storage.manifests.put(
                repo, Tag.parse(first), image.manifest.data, image.manifest.media_type
            )
            for tag in rest:
                await storage.tags.tag(repo, Tag.parse(tag), digest)

    await asyncio.gather(
        *(repository(f"ns{i % NAMESPACES:03d}/app{i:05d}", ["1.0"]) for i in range(repositories)),
        repository(BIG_REPOSITORY, [f"v{i:05d}" for i in range(tags)]),
    )
    await storage.driver.close()
    marker.touch()


async def record_usage(root: Path) -> None:
    driver = create_driver("filesystem", {"rootdirectory": str(root)})
    try:
        await measure_usage(driver, record=True)
    finally:
        await driver.close()


async def measure(root: Path, repetitions: int) -> list[dict[str, object]]:
    config_file = root.parent / f"{root.name}-config.yml"
    config_file.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root}}}, delete: {{enabled: true}}}}\n"
    )
    app = create_app(load_config(config_file, {}))
    pages = {
        "repositories, first page": "/ui/",
        "repositories, page 100": "/ui/?after=ns099/app04950",
        "repositories, search matching 1": "/ui/?q=app04242",
        "repositories, search matching none": "/ui/?q=zzz",
        f"tags of {BIG_REPOSITORY}, first page": f"/ui/r/{BIG_REPOSITORY}",
        f"tags of {BIG_REPOSITORY}, last page": f"/ui/r/{BIG_REPOSITORY}?after=v04950",
        "one image": f"/ui/r/{BIG_REPOSITORY}/-/manifest/v00001",
        "docker search, 25 of many": "/v1/search?q=app0",
    }
    results = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        for name, path in pages.items():
            times = []
            for _ in range(repetitions + 1):  # the first warms caches and is not counted
                started = time.perf_counter()
                response = await client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
            kept = times[1:]
            results.append({
                "page": name, "path": path, "median_ms": round(statistics.median(kept), 1),
                "max_ms": round(max(kept), 1), "target_ms": TARGET_MS,
            })  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=5_000)
    parser.add_argument("-n", type=int, default=7, help="repetitions per page")
    parser.add_argument("--root", type=Path, help="the store (default: a temp dir under /dev/shm)")
    args = parser.parse_args()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = args.root or Path(tempfile.mkdtemp(prefix="dockyard-ui-bench-", dir=base)) / "data"
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    asyncio.run(fill(root, args.repositories, args.tags))
    print(json.dumps({"filled": str(root), "seconds": round(time.perf_counter() - started, 1)}))
    started = time.perf_counter()
    asyncio.run(record_usage(root))
    print(json.dumps({"usage walk and record": round(time.perf_counter() - started, 1)}))
    for result in asyncio.run(measure(root, args.n)):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
