"""Pushers that reuse blobs nothing refers to at that moment, racing garbage collection runs in
another process: the load of the safety tests, on the filesystem and on S3.

Each pusher pushes images under fresh tags to its own repository and now and then deletes one of
its images, whose blobs then belong to no live image. New images take some of those blobs back:
when HEAD says the repository has the blob the upload is skipped, when another repository had it
the blob is mounted from there, and only otherwise uploaded again. A push refused with
MANIFEST_BLOB_UNKNOWN (a collection took a blob meanwhile) is pushed again from the start, as a
client does. Every image the registry acknowledged and nobody deleted must verify at the end.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digest_of
from tests.support.registry import PROJECT

ATTEMPTS = 12
"""Manifest pushes of one image before a pusher gives up (each refusal is counted)."""

_SUMMARY = re.compile(r"removed (\d+) blobs .*?; (\d+) digests spared")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class LiveImage:
    repository: str
    tag: str
    manifest: bytes
    blobs: tuple[str, ...]
    acknowledged: float = 0.0
    """When (``time.monotonic``), to read against the collections' times when it broke."""
    attempts: int = 1


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    blob_data: dict[str, bytes] = field(default_factory=dict)
    holders: dict[str, str] = field(default_factory=dict)
    """A repository each known blob was linked into."""
    references: Counter[str] = field(default_factory=Counter)
    """How many live images refer to each blob."""
    live: dict[tuple[str, str], LiveImage] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def unreferenced(self, rng: random.Random, count: int) -> list[str]:
        with self.lock:
            pool = sorted(d for d in self.blob_data if self.references[d] == 0)
        return rng.sample(pool, min(count, len(pool)))


class Pusher(threading.Thread):
    def __init__(self, url: str, repository: str, ledger: Ledger, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.repository = repository
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.stop_event = stop
        self.mine: list[LiveImage] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as http:
            while not self.stop_event.is_set():
                try:
                    self.push_one(http)
                    if len(self.mine) > 3 and self.rng.random() < 0.4:
                        self.delete_one(http)
                except (AssertionError, httpx.HTTPError) as exc:
                    with self.ledger.lock:
                        self.ledger.failures.append(f"{self.repository}: {exc!r}")
                    return

    def push_one(self, http: httpx.Client) -> None:
        ledger, rng = self.ledger, self.rng
        reused = ledger.unreferenced(rng, rng.randint(1, 3))
        fresh = [os.urandom(rng.choice((300, 5000, 70_000))) for _ in range(rng.randint(0, 2))]
        config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": rng.getrandbits(64)}).encode()
        layers = [ledger.blob_data[d] for d in reused] + fresh
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(b), "size": len(b)} for b in layers],
        }
        manifest = json.dumps(document).encode()
        tag = f"t{rng.getrandbits(48):x}"
        # Collections back to back at --grace-period 0s can condemn a blob this push re-uploaded
        # again on its next attempt (refusing is their safe outcome): the faster they run, the
        # more attempts a push may need, so it has many.
        refused = 0
        for _attempt in range(ATTEMPTS):
            for blob in [config, *layers]:
                self.ensure_blob(http, blob, reuse=digest_of(blob) in reused)
            response = http.put(
                f"/v2/{self.repository}/manifests/{tag}",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            if response.status_code == 201:
                break
            assert response.status_code == 400, (response.status_code, response.text)
            assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", response.text
            refused += 1
            with ledger.lock:
                ledger.counts["refused, pushed again"] += 1
        else:
            raise AssertionError(f"{self.repository}:{tag} refused {ATTEMPTS} times")
        blobs = tuple(digest_of(b) for b in [config, *layers])
        image = LiveImage(self.repository, tag, manifest, blobs, time.monotonic(), refused + 1)
        with ledger.lock:
            ledger.live[(self.repository, tag)] = image
            ledger.references.update(set(image.blobs))
            ledger.counts["acknowledged"] += 1
            ledger.counts["acknowledged with unreferenced blobs"] += bool(reused)
            ledger.counts["unreferenced blobs reused"] += len(reused)
            for blob in [config, *layers]:
                ledger.blob_data.setdefault(digest_of(blob), blob)
        self.mine.append(image)

    def ensure_blob(self, http: httpx.Client, blob: bytes, reuse: bool) -> None:
        digest = digest_of(blob)
        ledger = self.ledger
        if http.head(f"/v2/{self.repository}/blobs/{digest}").status_code == 200:
            with ledger.lock:
                ledger.counts["skipped: HEAD said exists"] += reuse
            return
        with ledger.lock:
            holder = ledger.holders.get(digest)
        if holder is not None and holder != self.repository:
            mounted = http.post(
                f"/v2/{self.repository}/blobs/uploads/", params={"mount": digest, "from": holder}
            )
            if mounted.status_code == 201:
                with ledger.lock:
                    ledger.counts["mounted"] += 1
                return
            assert mounted.status_code == 202, mounted.text
            http.delete(mounted.headers["Location"])
        response = http.post(f"/v2/{self.repository}/blobs/uploads/", params={"digest": digest}, content=blob)
        assert response.status_code == 201, response.text
        with ledger.lock:
            ledger.holders[digest] = self.repository

    def delete_one(self, http: httpx.Client) -> None:
        image = self.mine.pop(self.rng.randrange(len(self.mine)))
        with self.ledger.lock:
            del self.ledger.live[(image.repository, image.tag)]
            self.ledger.references.subtract(set(image.blobs))
            self.ledger.counts["deleted"] += 1
        digest = digest_of(image.manifest)
        response = http.delete(f"/v2/{image.repository}/manifests/{digest}")
        assert response.status_code == 202, (
            f"DELETE {image.repository}@{digest} (tag {image.tag}, acknowledged at "
            f"{image.acknowledged:.3f} after {image.attempts} attempts) at {time.monotonic():.3f}: "
            f"{response.status_code} {response.text}"
        )


@dataclass(frozen=True)
class Run:
    """One collection: its flags, when it ran (``time.monotonic``), and its output."""

    flags: tuple[str, ...]
    began: float
    ended: float
    stdout: str
    stderr: str


@dataclass
class Collections:
    runs: int = 0
    busy: int = 0
    blobs_removed: int = 0
    spared: int = 0
    errors: list[str] = field(default_factory=list)
    history: list[Run] = field(default_factory=list, repr=False)

    def removing(self, texts: list[str]) -> list[str]:
        """The lines of the collections that deleted something of a digest named in ``texts``
        (a failure's message), with the run's flags, times and summary: what a failure needs
        to be understood."""
        digests = {d for text in texts for d in _DIGEST.findall(text)}
        found = []
        for number, run in enumerate(self.history):
            lines = [line for line in run.stdout.splitlines() if any(d in line for d in digests)]
            if lines:
                summary = _SUMMARY.search(run.stderr)
                found.append(
                    f"run {number} {' '.join(run.flags)} {run.began:.3f}-{run.ended:.3f} "
                    f"({summary[0] if summary else run.stderr[-500:]}): " + "; ".join(lines)
                )
        return found


def collect_repeatedly(config: Path, stop: threading.Event, results: Collections) -> None:
    """``dockyard garbage-collect --grace-period 0s`` in its own process, again and again; what
    each deleted is kept (``Collections.removing``)."""
    choices = (("--grace-period", "0s"), ("--grace-period", "0s", "--delete-untagged"))
    while not stop.is_set():
        flags = choices[results.runs % 2]
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "registry", "garbage-collect", str(config), *flags],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            timeout=300,
            check=False,
        )
        results.history.append(Run(flags, began, time.monotonic(), done.stdout, done.stderr))
        if done.returncode != 0:
            if "another maintenance run holds the lease" in done.stderr:
                results.busy += 1
                continue
            results.errors.append(done.stderr[-3000:])
            return
        found = _SUMMARY.search(done.stderr)
        assert found, done.stderr
        results.runs += 1
        results.blobs_removed += int(found[1])
        results.spared += int(found[2])


Shortfall = Callable[[Ledger, Collections], list[str]]
"""What a load has yet to show (empty once it proved what its test needs)."""


def run_load(
    url: str,
    config: Path,
    repositories: list[str],
    seconds: float,
    seed: int,
    shortfall: Shortfall = lambda ledger, collections: [],
    most: float = 0.0,
) -> tuple[Ledger, Collections]:
    """Pushers and collections for ``seconds``, and on until ``shortfall`` is empty or ``most``
    seconds in all have passed: a slow machine gets there later, not never."""
    ledger = Ledger()
    stop = threading.Event()
    rng = random.Random(seed)
    pushers = [Pusher(url, name, ledger, rng.randrange(1 << 32), stop) for name in repositories]
    collections = Collections()
    collector = threading.Thread(target=collect_repeatedly, args=(config, stop, collections), daemon=True)
    for pusher in pushers:
        pusher.start()
    collector.start()
    time.sleep(seconds)
    deadline = time.monotonic() + max(0.0, most - seconds)
    while time.monotonic() < deadline and _short(shortfall, ledger, collections):
        time.sleep(1)
    stop.set()
    for thread in [*pushers, collector]:
        thread.join(timeout=300)
        assert not thread.is_alive()
    return ledger, collections


def _short(shortfall: Shortfall, ledger: Ledger, collections: Collections) -> bool:
    with ledger.lock:
        return bool(shortfall(ledger, collections))


def verify_live(url: str, ledger: Ledger) -> list[str]:
    """Every live image pulled by tag and checked byte for byte; the problems found."""
    problems = []
    with httpx.Client(base_url=url, timeout=120, follow_redirects=True) as http:
        for (repository, tag), image in sorted(ledger.live.items()):
            response = http.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            if response.status_code != 200 or response.content != image.manifest:
                manifest = digest_of(image.manifest)
                problems.append(f"{repository}:{tag}: manifest {manifest} {response.status_code}")
                continue
            for digest in image.blobs:
                blob = http.get(f"/v2/{repository}/blobs/{digest}")
                if blob.status_code != 200 or digest_of(blob.content) != digest:
                    problems.append(f"{repository}:{tag}: blob {digest} {blob.status_code}")
    return problems
