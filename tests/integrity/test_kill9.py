"""``kill -9`` of the whole server at random moments during concurrent pushes leaves storage whole.

Each round: several clients push blobs (chunked and monolithic, some shared between
clients), image manifests and indexes under a few tags, by tag and by digest with
``?tag=``; the server and all its workers are SIGKILLed at a random moment; the
server is started again on the same root. Then the root must satisfy every
invariant of ``layout.check_layout``, everything acknowledged before the kill must
be there and verify, every tag must point at a manifest some client pushed under
it, and nothing in flight may show through the API.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
import pytest

from tests.integrity.layout import TEMP_PREFIX, LayoutReport, check_layout
from tests.support.images import OCI_INDEX, OCI_MANIFEST, digest_of
from tests.support.pushing import expect, image_manifest, index_manifest, push_blob, push_blob_chunked
from tests.support.registry import RunningRegistry, StartRegistry

pytestmark = pytest.mark.slow

ROUNDS = 5
CLIENTS = 6
LOAD_SECONDS = (0.4, 2.0)
REPOSITORIES = ("kill/alpha", "kill/beta", "kill/nested/gamma")
TAGS = ("t0", "t1", "t2")
BLOB_SIZES = (0, 700, 40_000, 300_000, 1_100_000)
CHUNK = 256 * 1024


@dataclass
class Ledger:
    """What clients sent and what the registry acknowledged, across every round."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    blobs: set[tuple[str, str]] = field(default_factory=set)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    tag_attempts: defaultdict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    tags: set[tuple[str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    def attempt_tag(self, name: str, tag: str, digest: str) -> None:
        with self.lock:
            self.tag_attempts[(name, tag)].add(digest)

    def acknowledge(
        self,
        blobs: list[tuple[str, str]],
        manifest: tuple[str, str, bytes] | None = None,
        tag: tuple[str, str] | None = None,
    ) -> None:
        with self.lock:
            self.blobs.update(blobs)
            if manifest is not None:
                self.manifests[manifest[:2]] = manifest[2]
            if tag is not None:
                self.tags.add(tag)


class Pusher(threading.Thread):
    def __init__(self, url: str, ledger: Ledger, shared_blob: bytes, seed: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ledger = ledger
        self.shared_blob = shared_blob
        self.rng = random.Random(seed)
        self.pushed: defaultdict[str, list[bytes]] = defaultdict(list)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            try:
                while True:
                    self.push_one(client)
            except httpx.TransportError:
                return  # the server was killed under this request
            except AssertionError as exc:
                with self.ledger.lock:
                    self.ledger.failures.append(str(exc))

    def push_one(self, client: httpx.Client) -> None:
        rng = self.rng
        name = rng.choice(REPOSITORIES)
        if self.pushed[name] and rng.random() < 0.2:
            self.push_index(client, name)
            return
        layers = [os.urandom(rng.choice(BLOB_SIZES)) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.3:
            layers.append(self.shared_blob)  # several clients race to create this blob
        config = f'{{"nonce":"{rng.getrandbits(64):x}"}}'.encode()
        for blob in [*layers, config]:
            if len(blob) > CHUNK and rng.random() < 0.6:
                push_blob_chunked(client, name, blob, CHUNK)
            else:
                push_blob(client, name, blob)
            self.ledger.acknowledge([(name, digest_of(blob))])
        manifest = image_manifest(config, layers)
        self.push_manifest(client, name, manifest, OCI_MANIFEST)
        self.pushed[name].append(manifest)

    def push_index(self, client: httpx.Client, name: str) -> None:
        children = self.rng.sample(self.pushed[name], min(2, len(self.pushed[name])))
        self.push_manifest(client, name, index_manifest(children), OCI_INDEX)

    def push_manifest(self, client: httpx.Client, name: str, manifest: bytes, media_type: str) -> None:
        digest = digest_of(manifest)
        tag = self.rng.choice(TAGS)
        self.ledger.attempt_tag(name, tag, digest)
        headers = {"Content-Type": media_type}
        if self.rng.random() < 0.5:
            response = client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers=headers)
        else:
            response = client.put(
                f"/v2/{name}/manifests/{digest}", params={"tag": tag}, content=manifest, headers=headers
            )
        expect(response, 201)
        self.ledger.acknowledge([], (name, digest, manifest), (name, tag))


def _check_round(registry: RunningRegistry, ledger: Ledger, round_: int) -> list[str]:
    report = check_layout(registry.root)
    problems = [f"round {round_}: {p}" for p in report.problems]
    problems += _check_acknowledged(ledger, report)
    problems += _check_served(registry, ledger, report)
    return problems


def _check_acknowledged(ledger: Ledger, report: LayoutReport) -> list[str]:
    problems = []
    for name, digest in sorted(ledger.blobs):
        if (name, digest) not in report.layers or digest not in report.blobs:
            problems.append(f"acknowledged blob {name}@{digest} is missing")
    for name, digest in sorted(ledger.manifests):
        if (name, digest) not in report.revisions:
            problems.append(f"acknowledged manifest {name}@{digest} is missing")
    for key in sorted(ledger.tags):
        if key not in report.tags:
            problems.append(f"acknowledged tag {key} is missing")
    for key, digest in sorted(report.tags.items()):
        if digest not in ledger.tag_attempts[key]:
            problems.append(f"tag {key} points at {digest}, which no client pushed under it")
    return problems


def _check_served(registry: RunningRegistry, ledger: Ledger, report: LayoutReport) -> list[str]:
    problems = []
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        catalog = expect(client.get("/v2/_catalog", params={"n": 1000}), 200).json()["repositories"]
        with_manifests = {name for name, _ in report.revisions}
        if not with_manifests <= set(catalog) <= set(REPOSITORIES):
            problems.append(f"catalog {catalog} (repositories with manifests: {sorted(with_manifests)})")
        for name in REPOSITORIES:
            response = client.get(f"/v2/{name}/tags/list")
            if response.status_code == 404:
                continue
            listed = expect(response, 200).json()["tags"] or []
            stored = sorted(tag for (repo, tag) in report.tags if repo == name)
            if listed != stored or any(TEMP_PREFIX in t for t in listed):
                problems.append(f"{name}: tags list {listed}, current links for {stored}")
            for tag in listed:
                manifest = expect(client.get(f"/v2/{name}/manifests/{tag}"), 200)
                if digest_of(manifest.content) != report.tags[(name, tag)]:
                    problems.append(f"{name}:{tag} serves {digest_of(manifest.content)}")
        for (name, digest), body in sorted(ledger.manifests.items()):
            response = client.get(f"/v2/{name}/manifests/{digest}")
            if response.status_code != 200 or response.content != body:
                problems.append(f"{name}@{digest}: {response.status_code}")
        for name, digest in sorted(ledger.blobs):
            response = client.head(f"/v2/{name}/blobs/{digest}")
            if response.status_code != 200:
                problems.append(f"blob {name}@{digest}: HEAD {response.status_code}")
    return problems


def test_kill9_during_concurrent_pushes_leaves_consistent_storage(start_registry: StartRegistry) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    registry = start_registry(workers=2)
    ledger = Ledger()
    temp_files_seen = 0
    for round_ in range(ROUNDS):
        shared_blob = os.urandom(rng.choice(BLOB_SIZES[1:]))
        pushers = [Pusher(registry.url, ledger, shared_blob, rng.randrange(1 << 32)) for _ in range(CLIENTS)]
        for pusher in pushers:
            pusher.start()
        time.sleep(rng.uniform(*LOAD_SECONDS))
        registry.kill9()
        for pusher in pushers:
            pusher.join(timeout=60)
            assert not pusher.is_alive()
        assert ledger.failures == [], (seed, ledger.failures)
        registry.start()
        problems = _check_round(registry, ledger, round_)
        assert problems == [], (seed, problems[:30])
        temp_files_seen = len(check_layout(registry.root).temp_files)
    assert len(ledger.manifests) >= ROUNDS, f"the load pushed too little to prove anything (seed {seed})"
    assert ledger.tags, seed
    print(
        f"seed {seed}: {len(ledger.blobs)} blobs, {len(ledger.manifests)} manifests, "
        f"{len(ledger.tags)} tags acknowledged; {temp_files_seen} temp files left invisible"
    )
