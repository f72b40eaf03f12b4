"""The manifest push's side of the collection protocol, through the real server: with a run active
(the state record written as a run writes it), a push that refers to a blob the run decided to
delete is refused and leaves no tag or revision behind; one that finds a marker before
the decision waits for it; a run's markers are void once its lease expired; a push during a run
records what it refers to for the sweep to spare."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.lifecycle.commands import push
from tests.support.images import Image, random_image
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.served import Served

GC = Path("docker/registry/v2/_dockyard/gc")


def _run_active(registry: RunningRegistry, expires_in: float) -> str:
    """Write the state record as a run holding the lease does; the filesystem's clock is the
    storage's clock here."""
    run = uuid.uuid4().hex
    record = {
        "run": run,
        "active": True,
        "expires": time.time() + expires_in,
        "holder": "test",
        "operation": "gc",
    }
    (registry.root / GC).mkdir(parents=True, exist_ok=True)
    (registry.root / GC / "state").write_text(json.dumps(record))
    return run


def _marker(registry: RunningRegistry, run: str, digest: str) -> Path:
    """The marker that lists ``digest`` when the run condemns it, with the digests of its
    algorithm whose hex starts with the same two digits."""
    algorithm, hex_ = digest.split(":")
    return registry.root / GC / "runs" / run / "condemned" / algorithm / hex_[:2]


def _condemn(registry: RunningRegistry, run: str, digest: str) -> None:
    marker = _marker(registry, run, digest)
    marker.parent.mkdir(parents=True, exist_ok=True)
    with marker.open("a") as listed:
        listed.write(f"{digest}\n")


def _decide(registry: RunningRegistry, run: str) -> None:
    (registry.root / GC / "runs" / run / "decided").write_bytes(b"")


def _unreferenced(served: Served) -> Image:
    """An image whose manifest was deleted: its blobs are stored, linked, and referred to by nothing."""
    image = random_image(layers=1)
    push(served, "guard/app", "old", image)
    assert served.status("DELETE", f"/v2/guard/app/manifests/{image.digest}") == 202
    return image


def _put(served: Served, tag: str, image: Image) -> tuple[int, Any]:
    manifest = image.manifest
    response = served.http.put(
        f"/v2/guard/app/manifests/{tag}", content=manifest.data, headers={"Content-Type": manifest.media_type}
    )
    return response.status_code, (response.json() if response.content else {})


def test_a_push_referring_to_condemned_content_is_refused_and_withdrawn(
    start_registry: StartRegistry,
) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        push(served, "guard/app", "keep", random_image(layers=1))
        image = _unreferenced(served)
        run = _run_active(registry, expires_in=600)
        layer = image.layers[0].blob.digest
        _condemn(registry, run, layer)
        _decide(registry, run)

        status, body = _put(served, "again", image)

        assert status == 400
        assert body["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        assert layer in body["errors"][0]["detail"]["digests"]
        assert served.tags("guard/app") == ["keep"]
        assert served.status("GET", f"/v2/guard/app/manifests/{image.digest}") == 404
        tags = registry.root / "docker/registry/v2/repositories/guard/app/_manifests/tags"
        assert not (tags / "again").exists()
        referenced = registry.root / GC / "runs" / run / "referenced"
        recorded = {f"{p.parent.name}:{p.name}" for p in referenced.rglob("*") if p.is_file()}
        assert recorded == {image.digest, layer, image.config.digest}


def test_markers_of_a_run_whose_lease_expired_are_void(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        image = _unreferenced(served)
        run = _run_active(registry, expires_in=-600)
        _condemn(registry, run, image.layers[0].blob.digest)
        assert _put(served, "again", image)[0] == 201
        served.verify_tree("guard/app", "again")


def test_a_push_with_nothing_condemned_is_acknowledged_during_a_run(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        image = _unreferenced(served)
        run = _run_active(registry, expires_in=600)
        assert _put(served, "again", image)[0] == 201
        served.verify_tree("guard/app", "again")
        recorded = list((registry.root / GC / "runs" / run / "referenced").rglob("*"))
        assert len([p for p in recorded if p.is_file()]) == 3


def test_a_push_that_finds_a_marker_waits_for_the_runs_end(start_registry: StartRegistry) -> None:
    """Before the run decided, a marker may yet be lifted (another push referred to the digest in
    time): the push waits; the run ends without deleting it, and the push is acknowledged."""
    registry = start_registry()
    with Served(registry.url) as served:
        image = _unreferenced(served)
        run = _run_active(registry, expires_in=600)
        marker = _marker(registry, run, image.config.digest)
        _condemn(registry, run, image.config.digest)
        with ThreadPoolExecutor(1) as pool:
            pushing = pool.submit(_put, served, "again", image)
            referenced = registry.root / GC / "runs" / run / "referenced"
            deadline = time.monotonic() + 60
            while not (referenced.exists() and any(referenced.rglob("*"))):
                assert not pushing.done(), pushing.result()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1)  # not a timing assertion: the push had time to answer, and must not have
            assert not pushing.done()
            marker.unlink()  # spared ...
            record = json.loads((registry.root / GC / "state").read_text())
            (registry.root / GC / "state").write_text(json.dumps({**record, "active": False}))  # ... run over
            assert pushing.result(timeout=60)[0] == 201
        served.verify_tree("guard/app", "again")


def test_a_marker_condemns_only_the_digests_it_lists(start_registry: StartRegistry) -> None:
    """A marker holds the condemned digests sharing their first two hex digits: one that lists
    another digest of that group, decided, leaves the push alone."""
    registry = start_registry()
    with Served(registry.url) as served:
        image = _unreferenced(served)
        run = _run_active(registry, expires_in=600)
        layer = image.layers[0].blob.digest
        neighbour = layer[: len("sha256:") + 2] + ("0" if layer[-1] != "0" else "1") * 62
        _condemn(registry, run, neighbour)
        _decide(registry, run)
        assert _marker(registry, run, layer).is_file()
        assert _put(served, "again", image)[0] == 201
        served.verify_tree("guard/app", "again")
