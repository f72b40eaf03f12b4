"""Server time of the web interface's pages and of ``/v1/search`` on a large store.

    .venv/bin/python -m bench.ui_pages [--repositories 10000] [--tags 5000] [-n 7] [--root DIR]
                                       [--only open] [--s3]

Fills a filesystem store through the storage services (``--repositories`` repositories of one
tag each, in 100 namespaces, and one repository with ``--tags`` tags); with ``--s3`` copies it
into a bucket of a throwaway Ceph RADOS Gateway and serves it from there. Times the interface's
first list of names (a walk of the catalog, which leaves the record every worker reads), then
asks each page ``-n`` times through the registry's ASGI application in this process, so the
time is the server's alone (no network, no client): without access control, then (unless
``--only open``) with the built-in token server's rules (``RULES``), anonymously and signed in
as an account that may pull one namespace of a hundred. Prints one JSON line per page with the
median, the 95th percentile, the median CPU time and the target of 100 ms. The store goes to a
temp dir under /dev/shm, removed at the end, unless ``--root`` names one (kept, and reused when
it is already filled). Before the pages, a usage walk (``dockyard usage``'s) writes the record the
repository list takes sizes from; its time is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import httpx

from auth.keygen import generate_token_key
from bench.listings import S3_WRITERS
from registry.app import create_app
from registry.config import load_config
from registry.lifecycle.guard import PushGuard
from registry.lifecycle.usage import measure as measure_usage
from registry.references import Digest, RepositoryName, Tag
from registry.storage import Storage, paths
from registry.ui.names import RepositoryIndex
from storage_drivers import create_driver
from tests.support.ceph import CephRGW
from tests.support.images import random_image

TARGET_MS = 100.0
NAMESPACES = 100
BIG_REPOSITORY = "big/tags"


async def fill(root: Path, repositories: int, tags: int) -> None:
    marker = root / f"filled-{repositories}-{tags}"
    if marker.exists():
        return
    driver = create_driver("filesystem", {"rootdirectory": str(root)})
    storage = Storage(driver, PushGuard(driver))
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


PAGES = {
    "repositories, first page": "/ui/",
    "repositories, page 100": "/ui/?after=ns099/app04950",
    "repositories, search matching 1": "/ui/?q=app04242",
    "repositories, search matching none": "/ui/?q=zzz",
    "repositories, search matching all": "/ui/?q=app",
    f"tags of {BIG_REPOSITORY}, first page": f"/ui/r/{BIG_REPOSITORY}",
    f"tags of {BIG_REPOSITORY}, last page": f"/ui/r/{BIG_REPOSITORY}?after=v04950",
    "one image": f"/ui/r/{BIG_REPOSITORY}/-/manifest/v00001",
    "docker search, 25 of many": "/v1/search?q=app0",
    "docker search, none": "/v1/search?q=zzz",
}
ACCOUNT = "team"
PASSWORD = "team-password"
RULES = [
    {"account": ACCOUNT, "repository": "ns042/*", "actions": ["pull"]},
    {"account": ACCOUNT, "repository": BIG_REPOSITORY, "actions": ["pull"]},
    {"anonymous": True, "repository": "ns000/*", "actions": ["pull"]},
    {"anonymous": True, "repository": BIG_REPOSITORY, "actions": ["pull"]},
]
"""With access control: the signed-in account may pull one namespace of 100 and the large
repository, anonymous visitors another namespace and the large repository."""


def token_config(directory: Path) -> dict[str, object]:
    """The built-in token server with ``RULES``: each name is decided by those rules."""
    key = generate_token_key(directory, "ES256", overwrite=True)
    htpasswd = directory / "htpasswd"
    htpasswd.write_text(f"{ACCOUNT}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}\n")
    return {
        "auth": {"token": {
            "realm": "http://registry/auth/token", "service": "bench", "issuer": "bench",
            "rootcertbundle": str(key.certificate_path),
        }},
        "tokenserver": {
            "issuer": "bench", "service": "bench", "signingkey": str(key.key_path),
            "certificate": str(key.certificate_path), "htpasswd": str(htpasswd), "acl": RULES,
        },
    }  # fmt: skip


async def measure(
    root: Path, storage: dict[str, object], repetitions: int, only: str
) -> list[dict[str, object]]:
    setups: dict[str, dict[str, object]] = {"no access control": {}}
    if only != "open":
        setups["token rules"] = token_config(root.parent)
    results = []
    for setup, extra in setups.items():
        config_file = root.parent / f"{root.name}-config.yml"
        config = {
            "version": "0.1", "log": {"level": "error"},
            "storage": {**storage, "delete": {"enabled": True}},
            **extra,
        }  # fmt: skip
        config_file.write_text(json.dumps(config))  # JSON is YAML
        app = create_app(load_config(config_file, {}))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
            visitors: dict[str, dict[str, str]] = {"anonymous": {}}
            if extra:
                token = await client.get(
                    "/auth/token", params={"service": "bench", "scope": "registry:catalog:search"},
                    auth=(ACCOUNT, PASSWORD),
                )  # fmt: skip
                visitors[f"signed in ({ACCOUNT})"] = {"Authorization": f"Bearer {token.json()['token']}"}
            for visitor, headers in visitors.items():
                for name, path in PAGES.items():
                    kept, cpu = await _timed(client, path, headers, repetitions)
                    results.append({
                        "setup": setup, "visitor": visitor, "page": name, "path": path,
                        "median_ms": round(statistics.median(kept), 1),
                        "p95_ms": round(_percentile(kept, 95), 1),
                        "cpu_median_ms": round(statistics.median(cpu), 1), "target_ms": TARGET_MS,
                    })  # fmt: skip
    return results


async def _timed(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], repetitions: int
) -> tuple[list[float], list[float]]:
    """Server times and CPU times (this process, its threads too) of ``repetitions`` requests, in
    ms, after one that warms caches and is not counted. On a busy machine the CPU time says what
    a page costs when the wall time mostly says how long it waited for a core."""
    times, cpu = [], []
    for _ in range(repetitions + 1):
        client.cookies.clear()  # each request as the visitor's credentials say, no session
        started, cpu_started = time.perf_counter(), time.process_time()
        response = await client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return times[1:], cpu[1:]


def _percentile(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def copy_to_bucket(root: Path, client: Any, bucket: str) -> int:
    """Every file of the filled store as an object of ``bucket`` (the S3 driver's keys are the
    paths), but the registry's own records; how many."""
    files = [path for path in root.rglob("*") if path.is_file() and paths.DOCKYARD_DIR not in path.parts]
    with ThreadPoolExecutor(S3_WRITERS) as pool:
        for _ in pool.map(
            lambda path: client.put_object(
                Bucket=bucket, Key=str(path.relative_to(root)), Body=path.read_bytes()
            ),
            files,
        ):
            pass
    return len(files)


async def walk(storage_section: dict[str, object]) -> float:
    """Seconds the interface's first list of names takes (a walk of the catalog), which leaves
    the record every worker then reads."""
    ((driver_name, parameters),) = storage_section.items()
    assert isinstance(parameters, dict)
    driver = create_driver(driver_name, parameters)
    storage = Storage(driver, PushGuard(driver))
    index = RepositoryIndex(storage)
    started = time.perf_counter()
    while await index.names() is None:  # noqa: ASYNC110 - asked as pages ask it
        await asyncio.sleep(0.1)
    took = time.perf_counter() - started
    await storage.driver.close()
    return took


async def record_usage(storage_section: dict[str, object]) -> float:
    """Seconds a usage walk takes to write the record the repository list reads sizes from."""
    ((driver_name, parameters),) = storage_section.items()
    assert isinstance(parameters, dict)
    driver = create_driver(driver_name, parameters)
    started = time.perf_counter()
    try:
        await measure_usage(driver, record=True)
    finally:
        await driver.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=5_000)
    parser.add_argument("-n", type=int, default=7, help="repetitions per page")
    parser.add_argument(
        "--only", choices=["open", "all"], default="all", help="open: without the access-controlled runs"
    )
    parser.add_argument("--s3", action="store_true", help="serve the store from a throwaway Ceph RGW bucket")
    parser.add_argument("--root", type=Path, help="the store (default: a temp dir under /dev/shm)")
    args = parser.parse_args()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = args.root or Path(tempfile.mkdtemp(prefix="dockyard-ui-bench-", dir=base)) / "data"
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    asyncio.run(fill(root, args.repositories, args.tags))
    print(json.dumps({"filled": str(root), "seconds": round(time.perf_counter() - started, 1)}))
    ceph = Path(tempfile.mkdtemp(prefix="dockyard-ui-bench-ceph-")) if args.s3 else None
    rgw = CephRGW(ceph).start() if ceph is not None else None
    try:
        storage: dict[str, object] = {"filesystem": {"rootdirectory": str(root)}}
        if rgw is not None:
            bucket = rgw.create_bucket()
            started = time.perf_counter()
            objects = copy_to_bucket(root, rgw.client(), bucket)
            print(json.dumps({"copied to S3": objects, "seconds": round(time.perf_counter() - started, 1)}))
            storage = {"s3": rgw.driver_parameters(bucket)}
        print(
            json.dumps({"store": next(iter(storage)), "walk_seconds": round(asyncio.run(walk(storage)), 2)})
        )
        print(json.dumps({"usage walk and record": round(asyncio.run(record_usage(storage)), 1)}))
        for result in asyncio.run(measure(root, storage, args.n, args.only)):
            print(json.dumps(result))
    finally:
        if rgw is not None:
            rgw.stop()
        if ceph is not None:
            shutil.rmtree(ceph, ignore_errors=True)
        if args.root is None:  # a temp store is not kept: it holds memory under /dev/shm
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
