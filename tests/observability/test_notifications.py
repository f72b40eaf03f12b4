"""Webhook notifications: the events Distribution 3.1 sends for the same requests, durable
queues across restarts and a kill -9, and the per-endpoint bound."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from registry.config import ConfigError, load_config
from tests.auth.helpers import write_htpasswd
from tests.observability.conftest import (
    DISTRIBUTION3_DEFAULT,
    DISTRIBUTION3_ENV,
    Samples,
    Scraper,
    debug_section,
    value,
)
from tests.support.dockerd import Dockerd
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.processes import ServerProcess, free_port
from tests.support.pushing import image_manifest
from tests.support.registry import StartRegistry
from tests.support.waiting import until
from tests.support.webhooks import Receiver

EVENTS_V2 = "application/vnd.docker.distribution.events.v2+json"
EVENTS_V1 = "application/vnd.docker.distribution.events.v1+json"
PASSWORD = "correct horse battery staple"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
"""Version 7, as Distribution 3 makes them."""
RFC3339_NANO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*[1-9])?Z")
"""Go's RFC3339Nano in UTC: trailing zeros of the fraction trimmed."""
ACCEPT = {"Accept": f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"}


def endpoint(name: str, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": receiver.url,
        "headers": {"X-Receiver": [name]},
        "timeout": "2s",
        "threshold": 2,
        "backoff": "200ms",
        **extra,
    }


def notifications(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"notifications": {"events": {"includereferences": True}, "endpoints": list(endpoints)}}


@pytest.fixture
def start_distribution3(tmp_path: Path) -> Iterator[Any]:
    """CNCF Distribution 3.1 with a ``notifications`` section, on a fresh folder."""
    binary = Path(os.environ.get(DISTRIBUTION3_ENV) or DISTRIBUTION3_DEFAULT)
    if not binary.is_file() or shutil.which(str(binary)) is None:
        pytest.skip(
            f"CNCF Distribution 3.1 not found at {binary}: run "
            f"../shared/anchors/unpack-distribution.sh /tmp/anchors, or set {DISTRIBUTION3_ENV}"
        )
    processes: list[ServerProcess] = []

    def start(section: dict[str, Any]) -> str:
        port = free_port()
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(tmp_path / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}"},
            **section,
        }
        (tmp_path / "config.yml").write_text(yaml.safe_dump(config))
        process = ServerProcess([str(binary), "serve", str(tmp_path / "config.yml")], tmp_path / "d3.log")
        processes.append(process)
        process.wait_http(f"http://127.0.0.1:{port}/v2/")
        return f"127.0.0.1:{port}"

    yield start
    for process in processes:
        process.stop()


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """What must be the same whichever registry sent it: all but ids, times and addresses."""
    assert UUID.fullmatch(event["id"]), event
    assert RFC3339_NANO.fullmatch(event["timestamp"]), event
    assert set(event["request"]) >= {"id", "addr", "host", "method"}, event
    assert set(event["source"]) == {"addr", "instanceID"}, event
    target = dict(event["target"])
    if "url" in target:
        target["url"] = urlsplit(target["url"]).path
    return {
        "action": event["action"],
        "target": target,
        "request": {key: event["request"].get(key) for key in ("method", "useragent")},
        "actor": event["actor"],
    }


def canonical(events: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(comparable(event), sort_keys=True) for event in events)


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    """POST then PUT with the digest (Distribution has no one-request push)."""
    digest = digest_of(data)
    location = client.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    separator = "&" if "?" in location else "?"
    response = client.put(f"{location}{separator}digest={digest}", content=data)
    assert response.status_code == 201, response.text
    return digest


def push_manifest(client: httpx.Client, name: str, reference: str, manifest: bytes) -> str:
    response = client.put(
        f"/v2/{name}/manifests/{reference}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    return digest_of(manifest)


def exercise(host: str, config: bytes, layers: list[bytes]) -> None:
    """Pushes, pulls, a mount and deletes, the same against any registry."""
    with httpx.Client(base_url=f"http://{host}", headers={"User-Agent": "notify-tests/1"}) as client:
        for blob in [config, *layers]:
            push_blob(client, "team/app", blob)
        push_manifest(client, "team/app", "v1", image_manifest(config, layers))
        assert client.get("/v2/team/app/manifests/v1", headers=ACCEPT).status_code == 200
        layer = digest_of(layers[0])
        assert client.get(f"/v2/team/app/blobs/{layer}").status_code == 200
        assert client.head(f"/v2/team/app/blobs/{layer}").status_code == 200
        assert client.head("/v2/team/app/manifests/v1", headers=ACCEPT).status_code == 200
        mounted = client.post(f"/v2/team/other/blobs/uploads/?mount={layer}&from=team/app")
        assert mounted.status_code == 201, mounted.text
        assert client.delete(f"/v2/team/other/blobs/{layer}").status_code == 202
        untagged = push_manifest(
            client,
            "team/app",
            digest_of(image_manifest(config, layers[1:])),
            image_manifest(config, layers[1:]),
        )
        assert client.delete(f"/v2/team/app/manifests/{untagged}").status_code == 202
        tagged = digest_of(image_manifest(config, layers))
        assert client.delete(f"/v2/team/app/manifests/{tagged}").status_code == 202  # and its tag


def test_pushes_pulls_mount_and_deletes_match_distribution(
    start_registry: StartRegistry, start_distribution3: Any, tmp_path: Path
) -> None:
    ours, theirs, filtered = Receiver().start(), Receiver().start(), Receiver().start()
    try:
        # A folder, as Distribution's: blob GETs are answered, not redirected to S3.
        registry = start_registry(
            notifications(
                endpoint("all", ours),
                endpoint("v1", filtered, mediatype=EVENTS_V1, ignore={"actions": ["pull"]}),
            ),
            root=tmp_path / "dockyard",
        )
        distribution = start_distribution3(notifications(endpoint("all", theirs)))
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        layers = [os.urandom(3000), os.urandom(5000)]
        exercise(registry.host, config, layers)
        exercise(distribution, config, layers)

        expected = theirs.wait_for(lambda events: len(events) >= 14)
        assert [e["action"] for e in expected].count("pull") == 4
        ours.wait_for(lambda events: len(events) >= len(expected))
        assert canonical(ours.unique_events()) == canonical(expected)
        # Writes arrive in the order they were answered.
        writes = [e for e in ours.unique_events() if e["action"] != "pull"]
        assert [e["action"] for e in writes] == ["push"] * 4 + ["mount", "delete", "push"] + ["delete"] * 3

        headers, _ = ours.posts[0]
        assert headers["content-type"] == EVENTS_V2
        assert headers["x-receiver"] == "all"
        pushes = filtered.wait_for(lambda events: len(events) >= 10)
        assert {e["action"] for e in pushes} == {"push", "mount", "delete"}
        assert {headers["content-type"] for headers, _ in filtered.posts} == {EVENTS_V1}
    finally:
        for receiver in (ours, theirs, filtered):
            receiver.stop()


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FROM-scratch Dockerfile with three layers of fresh random content."""
    context = tmp_path_factory.mktemp("docker-build")
    for index in range(3):
        (context / f"part{index}.bin").write_bytes(os.urandom(64 * 1024))
    (context / "Dockerfile").write_text(
        "FROM scratch\n" + "".join(f"COPY part{i}.bin /srv/part{i}.bin\n" for i in range(3))
    )
    return context


@pytest.mark.clients
@pytest.mark.slow
def test_docker_push_sends_the_events_distribution_sends(
    start_registry: StartRegistry, start_distribution3: Any, dockerd: Dockerd, build_context: Path
) -> None:
    ours, theirs = Receiver().start(), Receiver().start()
    try:
        registry = start_registry(notifications(endpoint("docker", ours)))
        distribution = start_distribution3(notifications(endpoint("docker", theirs)))
        dockerd.docker("build", "--quiet", "-t", "notify/app:1", str(build_context))
        for host in (registry.host, distribution):
            dockerd.docker("tag", "notify/app:1", f"{host}/notify/app:1")
            dockerd.docker("push", f"{host}/notify/app:1")

        def pushed(events: list[dict[str, Any]]) -> bool:
            return any(e["target"].get("tag") == "1" for e in events)

        expected = theirs.wait_for(pushed)
        # Pull events are queued in batches a moment after their request, so the manifest's push
        # event can arrive before the blob HEADs that preceded it.
        received = ours.wait_for(lambda events: pushed(events) and len(events) >= len(expected))
        blobs = [
            e
            for e in expected
            if e["action"] == "push" and e["target"]["mediaType"] == "application/octet-stream"
        ]
        assert len(blobs) == 4, expected  # three layers and the config
        assert canonical(received) == canonical(expected)
    finally:
        ours.stop()
        theirs.stop()


def push_images(host: str, repository: str, count: int) -> list[tuple[str, str]]:
    """``count`` images of one fresh layer and a config each; the (action, digest) of every
    write, in order."""
    writes = []
    with httpx.Client(base_url=f"http://{host}") as client:
        for index in range(count):
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(8).hex()}).encode()
            layer = os.urandom(2000)
            for blob in (config, layer):
                writes.append(("push", push_blob(client, repository, blob)))
            writes.append(
                ("push", push_manifest(client, repository, f"t{index}", image_manifest(config, [layer])))
            )
    return writes


@pytest.mark.parametrize("queue", ["storage", "directory"])
def test_events_survive_restarts_and_a_kill9_while_the_receiver_is_down(
    start_registry: StartRegistry, tmp_path: Path, queue: str
) -> None:
    receiver = Receiver()  # not started: down
    config = notifications(endpoint("durable", receiver))
    if queue == "directory":
        config["notifications"]["queue"] = {"directory": str(tmp_path)}
    registry = start_registry(config, workers=2)
    written = push_images(registry.host, "durable/one", 4)
    registry.restart()
    written += push_images(registry.host, "durable/two", 4)
    registry.kill9()
    registry.start()
    written += push_images(registry.host, "durable/three", 4)
    receiver.start()
    try:
        events = receiver.wait_for(lambda events: len(events) >= len(written), timeout=90)
        assert [(e["action"], e["target"]["digest"]) for e in events] == written
        assert len({e["id"] for e in events}) == len(written) == 36
        if queue == "directory":
            assert list(tmp_path.glob("docker/registry/v2/_dockyard/notifications/durable/lease"))
    finally:
        receiver.stop()


def test_replicas_on_one_storage_deliver_each_event_once_in_order(start_registry: StartRegistry) -> None:
    receiver = Receiver().start()
    try:
        first = start_registry(notifications(endpoint("shared", receiver)), workers=2)
        second = start_registry({**notifications(endpoint("shared", receiver)), "storage": first.storage})
        written = []
        for round_ in range(4):
            for registry in (first, second):
                written += push_images(registry.host, f"replicas/r{round_}", 2)
        events = receiver.wait_for(lambda events: len(events) >= len(written))
        assert [(e["action"], e["target"]["digest"]) for e in events] == written
        # One deliverer at a time: with a receiver that always answers, nothing came twice.
        assert len(receiver.events()) == len(written) == 48
    finally:
        receiver.stop()


def test_a_dead_endpoint_keeps_only_the_newest_events(start_registry: StartRegistry) -> None:
    receiver = Receiver()  # down for the whole push
    debug_port = free_port()
    registry = start_registry(
        {
            **notifications(endpoint("bounded", receiver, maxevents=5, threshold=1)),
            "http": debug_section(debug_port),
        }
    )
    with httpx.Client(base_url=registry.url) as client:
        digests = [push_blob(client, "bounded/app", os.urandom(1000)) for _ in range(12)]

    dropped = re.compile(r"notifications to bounded: .* dropped the oldest (\d+) events")

    def dropped_so_far() -> int:
        return sum(int(found) for found in dropped.findall(registry.log()))

    deadline = time.monotonic() + 60
    while dropped_so_far() < 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dropped_so_far() == 7, registry.log()[-3000:]

    def counted(samples: Samples) -> None:
        assert (
            value(samples, "registry_notifications_events_total", endpoint="bounded", outcome="dropped") == 7
        )
        assert value(samples, "registry_notifications_errors_total", endpoint="bounded") > 0

    Scraper(debug_port).until(counted)
    receiver.start()
    try:
        events = receiver.wait_for(lambda events: len(events) >= 5)
        assert [e["target"]["digest"] for e in events] == digests[-5:]
    finally:
        receiver.stop()


def test_the_notifications_section_is_distributions(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    section = {
        "events": {"includereferences": "true"},
        "queue": {"directory": str(tmp_path), "maxevents": "100"},
        "endpoints": [
            {
                "name": "scanner",
                "url": "https://scanner.example.com/hook",
                "headers": {"Authorization": ["Bearer x"]},
                "timeout": "500ms",
                "threshold": "5",
                "backoff": "2s",
                "ignoredmediatypes": ["application/octet-stream"],
                "ignore": {"mediatypes": ["text/plain"], "actions": ["pull"]},
                "maxbytes": "1000",
            },
            {"name": "off", "disabled": "true", "url": "https://off.example.com/"},
        ],
    }
    base = {"version": "0.1", "storage": {"filesystem": {"rootdirectory": str(tmp_path)}}}
    path.write_text(yaml.safe_dump({**base, "notifications": section}))
    config = load_config(path).notifications
    assert config.include_references
    assert config.directory == str(tmp_path)
    (scanner,) = config.endpoints
    assert scanner.url == "https://scanner.example.com/hook"
    assert scanner.headers == {"Authorization": ["Bearer x"]}
    assert (scanner.timeout, scanner.threshold, scanner.backoff) == (0.5, 5, 2.0)
    assert scanner.ignored_media_types == {"application/octet-stream", "text/plain"}
    assert scanner.ignored_actions == {"pull"}
    assert (scanner.max_events, scanner.max_bytes, scanner.media_type) == (100, 1000, EVENTS_V2)

    broken = {
        "queue": {"directory": str(tmp_path / "missing")},
        "endpoints": [
            {"name": "a", "url": "ftp://a/"},
            {"name": "b", "url": "http://b/", "ignore": {"actions": ["pulls"]}},
            {"url": "http://c/"},
        ],
    }
    path.write_text(yaml.safe_dump({**base, "notifications": broken}))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    problems = "\n".join(raised.value.problems)
    assert "notifications.queue.directory" in problems
    assert "notifications.endpoints[0].url" in problems
    assert "notifications.endpoints[1].ignore.actions" in problems
    assert "notifications.endpoints[2].name" in problems


class BlackHole:
    """Accepts connections and never answers: an endpoint stuck for good."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/events"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.connections.append(self.socket.accept()[0])

    def close(self) -> None:
        for connection in [*self.connections, self.socket]:
            connection.close()


def test_a_stuck_endpoint_holds_up_no_other_and_events_name_the_account(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    healthy, stuck = Receiver().start(), BlackHole()
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": PASSWORD})
    try:
        registry = start_registry(
            {
                "auth": {"htpasswd": {"realm": "Dockyard", "path": str(htpasswd)}},
                **notifications(
                    {"name": "stuck", "url": stuck.url, "timeout": "600s"}, endpoint("healthy", healthy)
                ),
            }
        )
        config, layer = b'{"os":"linux"}', os.urandom(2000)
        with httpx.Client(base_url=registry.url, auth=("alice", PASSWORD)) as client:
            for blob in (config, layer):
                push_blob(client, "team/gone", blob)
            push_manifest(client, "team/gone", "v1", image_manifest(config, [layer]))
            deleted = client.delete("/v2/team/gone/_dockyard/repository")
            assert deleted.status_code == 202, deleted.text

        events = healthy.wait_for(lambda events: len(events) >= 4 and events[-1]["action"] == "delete")
        assert [e["action"] for e in events] == ["push", "push", "push", "delete"]
        assert events[-1]["target"] == {"mediaType": "", "digest": "", "size": 0, "repository": "team/gone"}
        assert {json.dumps(e["actor"]) for e in events} == {'{"name": "alice"}'}
        # Its deliverer may run in another worker, which lists the queue only every half second.
        until(lambda: stuck.connections, what="for the stuck endpoint to be tried")
    finally:
        healthy.stop()
        stuck.close()


def test_a_write_whose_events_cannot_be_queued_is_logged_counted_and_audited_as_refused(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    receiver = Receiver()  # never started: nothing is delivered anyway
    queue, audit, debug_port = tmp_path / "queue", tmp_path / "audit.log", free_port()
    queue.mkdir()
    config = notifications(endpoint("blocked", receiver))
    config["notifications"]["queue"] = {"directory": str(queue)}
    registry = start_registry(
        {
            **config,
            "http": debug_section(debug_port),
            "log": {"formatter": "json", "audit": {"path": str(audit)}},
        }
    )
    # A file where the endpoint's queue directory goes: no event can be written into it.
    blocked = queue / "docker/registry/v2/_dockyard/notifications/blocked/queue"
    shutil.rmtree(blocked, ignore_errors=True)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_bytes(b"")
    data = os.urandom(1000)
    with httpx.Client(base_url=registry.url) as client:
        location = client.post("/v2/blocked/app/blobs/uploads/").headers["Location"]
        separator = "&" if "?" in location else "?"
        refused = client.put(f"{location}{separator}digest={digest_of(data)}", content=data)
    assert refused.status_code == 503, refused.text
    assert refused.json()["errors"][0]["code"] == "UNAVAILABLE"

    request_id = refused.headers["X-Request-Id"]
    lines = [json.loads(line) for line in registry.log().splitlines() if line.startswith("{")]
    (line,) = [e for e in lines if e.get("logger") == "registry.access" and e.get("request_id") == request_id]
    assert (line["method"], line["route"], line["status"]) == ("PUT", "blob_upload_chunk", 503)
    labels = {"handler": "blob_upload_chunk", "method": "put"}

    def counted(samples: Samples) -> None:
        assert value(samples, "registry_http_requests_total", code="503", **labels) == 1
        assert value(samples, "registry_http_requests_total", code="201", **labels) == 0

    Scraper(debug_port).until(counted)
    audited = audit.read_text() if audit.exists() else ""
    assert '"action":"push"' not in audited, audited
