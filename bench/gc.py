"""``python -m bench.gc``: garbage collection of a large store, Dockyard against Distribution 2.8.

One store, written directly in the layout (pushing it would take hours): 2,000 repositories
``gc/r-NNNN``, each with 10 image manifests, 5 of them tagged, one deleted (its revision link
gone, its blob left behind), 2 configs and 8 layers of its own, one layer linked but used by no
manifest. 20,000 manifest blobs and 20,000 config and layer blobs: 40,000 blobs, of which 4,000
(the deleted manifests and the unused layers) are garbage; with ``--delete-untagged``, the 8,000
untagged manifests too. Every digest is the sha256 of its content.

Each repetition times, on a fresh copy of the store (so both sweep equal content), Dockyard's
``dockyard garbage-collect CONFIG --grace-period 0s`` and Debian's ``docker-registry
garbage-collect CONFIG`` (Distribution 2.8: no grace period), first with ``--dry-run`` on the
same copy, then a real run on a copy each; A,B then B,A. Both print every item; the output goes
to a file, and the counts of removed blobs are checked to be equal. With ``--s3`` the store is a
bucket on a throwaway Ceph RADOS Gateway, rebuilt for each real run.

On the filesystem, Dockyard's runs find the record of manifests' references and blob sizes a
real run leaves for the next (``registry/lifecycle/known.py``), as a scheduled collection finds
it; ``--cold`` measures runs without it (the first run on a store). S3 runs are always cold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.procstat import process_tree
from bench.servers import PROJECT
from tests.support.ceph import CephRGW

ROOT = "docker/registry/v2"
REPOSITORIES = 2000
MANIFESTS = 10
"""Per repository: manifests 0-4 are tagged, 5-8 untagged, 9 deleted."""
TAGGED = 5
CONFIGS = 2
LAYERS = 8
"""Per repository; the last is linked but no manifest uses it."""
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
S3_WRITERS = 32


@dataclass(frozen=True)
class Blob:
    digest: str
    content: bytes

    @staticmethod
    def of(content: bytes) -> Blob:
        return Blob("sha256:" + hashlib.sha256(content).hexdigest(), content)


def blob_key(digest: str) -> str:
    hex_digest = digest.split(":", 1)[1]
    return f"{ROOT}/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


def store_objects(repositories: int = REPOSITORIES) -> Iterator[tuple[str, bytes]]:
    """Every (key, content) of the store."""
    for r in range(repositories):
        name = f"gc/r-{r:04d}"
        repo = f"{ROOT}/repositories/{name}"
        configs = [Blob.of(json.dumps({"repository": name, "config": c}).encode()) for c in range(CONFIGS)]
        layers = [Blob.of(f"{name} layer {n}".encode() * 8) for n in range(LAYERS)]
        for blob in (*configs, *layers):
            yield blob_key(blob.digest), blob.content
            yield f"{repo}/_layers/sha256/{blob.digest[7:]}/link", blob.digest.encode()
        for m in range(MANIFESTS):
            used = [layers[m % (LAYERS - 1)], layers[(m + 3) % (LAYERS - 1)]]
            document = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor("application/vnd.oci.image.config.v1+json", configs[m % CONFIGS]),
                "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b) for b in used],
                "annotations": {"index": str(m)},
            }
            manifest = Blob.of(json.dumps(document, indent=3).encode())
            yield blob_key(manifest.digest), manifest.content
            if m == MANIFESTS - 1:
                continue  # deleted: the blob stays, nothing refers to it
            link = manifest.digest.encode()
            yield f"{repo}/_manifests/revisions/sha256/{manifest.digest[7:]}/link", link
            if m < TAGGED:
                tag = f"{repo}/_manifests/tags/t{m}"
                yield f"{tag}/current/link", link
                yield f"{tag}/index/sha256/{manifest.digest[7:]}/link", link


def _descriptor(media_type: str, blob: Blob) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": blob.digest, "size": len(blob.content)}


def build_store(root: Path, repositories: int = REPOSITORIES) -> int:
    """Write the store below ``root``; returns the number of files."""
    count = 0
    made: set[str] = set()
    for key, content in store_objects(repositories):
        path = root / key
        parent = str(path.parent)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        path.write_bytes(content)
        count += 1
    return count


def build_bucket(client: Any, bucket: str, repositories: int = REPOSITORIES) -> int:
    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(S3_WRITERS) as pool:
        return sum(1 for _ in pool.map(put, store_objects(repositories)))


PACKAGES = ("registry", "storage_drivers", "auth", "config_reader", "offload")


def compile_project() -> None:
    """Dockyard's modules compiled to bytecode before any run, as an installed package has them:
    where the environment forbids writing bytecode (``PYTHONDONTWRITEBYTECODE``), each run would
    otherwise compile some 60 modules again (about 0.04 s of CPU)."""
    python = str(PROJECT / ".venv" / "bin" / "python")
    subprocess.run([python, "-m", "compileall", "-q", *PACKAGES], cwd=PROJECT, check=True)


def write_config(path: Path, storage: dict[str, Any]) -> Path:
    config = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {**storage, "delete": {"enabled": True}},
        "http": {"addr": "127.0.0.1:0"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Run:
    seconds: float
    cpu: float
    """User and system CPU seconds of the command (its threads included)."""
    peak_rss_mb: float
    blobs: int
    """Blobs the run removed (or would)."""


def timed(command: list[str], output: Path, count: Callable[[str], int]) -> Run:
    """Run ``command`` to completion, sampling its RSS; its output goes to ``output``."""
    started = time.perf_counter()
    cpu_before = _children_cpu()
    with output.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _rss_mb(process.pid))
            time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{output.read_text(errors='replace')[-3000:]}")
    return Run(seconds, _children_cpu() - cpu_before, peak, count(output.read_text(errors="replace")))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rss_mb(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def dockyard_blobs(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("blob "))


def distribution_blobs(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("blob eligible for deletion"))


def dockyard(config: Path, dry_run: bool, untagged: bool) -> list[str]:
    command = [str(PROJECT / ".venv" / "bin" / "dockyard"), "garbage-collect", str(config)]
    command += ["--grace-period", "0s"]
    return command + (["--dry-run"] if dry_run else []) + (["--delete-untagged"] if untagged else [])


def distribution(config: Path, dry_run: bool, untagged: bool) -> list[str]:
    command = ["docker-registry", "garbage-collect", str(config)]
    return command + (["--dry-run"] if dry_run else []) + (["--delete-untagged"] if untagged else [])


Results = dict[str, dict[str, list[Run]]]
"""case ("dry run", "sweep") -> registry -> runs."""


RECORD = f"{ROOT}/_dockyard/gc/references"
"""What Dockyard's last run found (``registry/lifecycle/known.py``)."""


class FilesystemStores:
    def __init__(self, workdir: Path, repositories: int, warm: bool) -> None:
        self.workdir = workdir
        self.original = workdir / "original"
        started = time.perf_counter()
        files = build_store(self.original, repositories)
        log(f"filesystem store: {files} files written in {time.perf_counter() - started:.1f} s")
        if warm:
            self._prime()

    def _prime(self) -> None:
        """Leave in the store the record a real run writes, as a scheduled collection finds it
        from the run before: one real run on a copy, untimed, whose record is copied back."""
        config = write_config(self.workdir / "prime.yml", self.fresh("prime"))
        subprocess.run([*dockyard(config, False, False), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        (self.original / RECORD).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.workdir / "prime" / RECORD, self.original / RECORD)
        shutil.rmtree(self.workdir / "prime")
        log("Dockyard's record of references and sizes primed by a real run")

    def fresh(self, label: str) -> dict[str, Any]:
        copy = self.workdir / label
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-a", str(self.original), str(copy)], check=True)
        subprocess.run(["sync"], check=True)
        return {"filesystem": {"rootdirectory": str(copy)}}


class BucketStores:
    def __init__(self, rgw: CephRGW, repositories: int) -> None:
        self.rgw = rgw
        self.repositories = repositories

    def fresh(self, label: str) -> dict[str, Any]:
        bucket = self.rgw.create_bucket()
        started = time.perf_counter()
        objects = build_bucket(self.rgw.client(), bucket, self.repositories)
        log(f"bucket {bucket}: {objects} objects written in {time.perf_counter() - started:.1f} s")
        return {"s3": self.rgw.driver_parameters(bucket)}


def measure(
    stores: FilesystemStores | BucketStores, workdir: Path, repetitions: int, untagged: bool
) -> Results:
    results: Results = {"dry run": {}, "sweep": {}}
    registries = {
        "Dockyard": (dockyard, dockyard_blobs),
        "Distribution 2.8": (distribution, distribution_blobs),
    }
    for repetition in range(repetitions):
        order = list(registries.items())
        if repetition % 2:
            order.reverse()
        shared = write_config(workdir / f"dry-{repetition}.yml", stores.fresh("dry"))
        for name, (command, count) in order:
            run = timed(command(shared, True, untagged), workdir / f"{name}-dry.log", count)
            results["dry run"].setdefault(name, []).append(run)
            log(f"{name} dry run: {run.seconds:.2f} s, CPU {run.cpu:.2f} s, {run.blobs} blobs")
        for name, (command, count) in order:
            config = write_config(workdir / f"{name}-{repetition}.yml", stores.fresh(f"sweep-{name}"))
            run = timed(command(config, False, untagged), workdir / f"{name}-sweep.log", count)
            results["sweep"].setdefault(name, []).append(run)
            log(f"{name} sweep: {run.seconds:.2f} s, CPU {run.cpu:.2f} s, {run.blobs} blobs")
        for case in results.values():
            found = {name: runs[-1].blobs for name, runs in case.items()}
            if len(set(found.values())) != 1:
                raise RuntimeError(f"the registries disagree on what to remove: {found}")
    return results


def render(where: str, results: Results, repetitions: int) -> str:
    lines = [
        "| Store | Run | Dockyard s | Distribution 2.8 s | Dockyard's lead | CPU s (Dockyard / 2.8) | "
        "Blobs removed | Peak RSS MB (Dockyard / 2.8) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, runs in results.items():
        ours, theirs = runs["Dockyard"], runs["Distribution 2.8"]
        mine = statistics.median(r.seconds for r in ours)
        other = statistics.median(r.seconds for r in theirs)
        cpu = f"{statistics.median(r.cpu for r in ours):.2f} / {statistics.median(r.cpu for r in theirs):.2f}"
        rss = f"{max(r.peak_rss_mb for r in ours):.0f} / {max(r.peak_rss_mb for r in theirs):.0f}"
        lines.append(
            f"| {where} | {case} | {mine:.2f} ({_spread(ours)}) | {other:.2f} ({_spread(theirs)}) | "
            f"{other / mine:.1f}x | {cpu} | {ours[0].blobs:,} | {rss} |"
        )
    return "\n".join(lines) + f"\n\nMedians of {repetitions} repetitions (min-max in brackets).\n"


def _spread(runs: list[Run]) -> str:
    return f"{min(r.seconds for r in runs):.2f}-{max(r.seconds for r in runs):.2f}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gc", description=__doc__)
    parser.add_argument("-n", "--repetitions", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="on a throwaway Ceph RADOS Gateway")
    parser.add_argument(
        "--delete-untagged", action="store_true", help="both registries with --delete-untagged"
    )
    parser.add_argument(
        "--repositories", type=int, default=REPOSITORIES, help="a smaller store to try changes on"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="Dockyard without the record a previous run leaves (filesystem; S3 is always cold)",
    )
    parser.add_argument("--tmpdir", type=Path, help="where the stores go (default: $TMPDIR)")
    parser.add_argument("--build-only", type=Path, help="only write the filesystem store there")
    parser.add_argument("--output", type=Path, help="also append the table to this markdown file")
    args = parser.parse_args(argv)
    if args.build_only is not None:
        files = build_store(args.build_only, args.repositories)
        log(f"{files} files written below {args.build_only}")
        return 0
    if shutil.which("docker-registry") is None:
        # ./dev installs the Debian packages for the bench and the tests; this module runs alone.
        raise SystemExit(
            "python -m bench.gc: Distribution 2.8 (Debian's docker-registry) is not installed; "
            "./dev bench installs every package the bench uses, or: apt-get install docker-registry"
        )
    compile_project()
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-gc-", dir=args.tmpdir))
    rgw = CephRGW(workdir / "ceph").start() if args.s3 else None
    try:
        stores = (
            BucketStores(rgw, args.repositories)
            if rgw is not None
            else FilesystemStores(workdir, args.repositories, warm=not args.cold)
        )
        load_before = os.getloadavg()[0]
        results = measure(stores, workdir, args.repetitions, args.delete_untagged)
        load_after = os.getloadavg()[0]
        where = "Ceph RGW" if rgw is not None else "filesystem" + (", cold" if args.cold else "")
        if args.delete_untagged:
            where += ", --delete-untagged"
        text = render(where, results, args.repetitions)
        text += f"Load average {load_before:.1f} before, {load_after:.1f} after.\n"
        print(text)
        if args.output is not None:
            with args.output.open("a") as output:
                output.write(text + "\n")
    finally:
        if rgw is not None:
            rgw.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
