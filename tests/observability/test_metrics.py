"""Prometheus metrics on the debug listener: summed over the workers, surviving a worker's
death, named and labelled as CNCF Distribution 3 names them."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection, HTTPResponse
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integrity.workers import process_group, serving_process
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.processes import free_port
from tests.support.pushing import expect, push_image
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.waiting import until

from .conftest import Samples, Scraper, debug_section, value

pytestmark = pytest.mark.slow

REQUESTS = "registry_http_requests_total"


def fresh_connection_requests(registry: RunningRegistry, count: int) -> set[int]:
    """``count`` GET /v2/, each on a new connection; the pids of the workers that served them."""
    assert registry.process is not None
    served = set()
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
        connection.request("GET", "/v2/")
        pid = serving_process(connection, registry.port, registry.process.pid)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        connection.close()
        if pid is not None:
            served.add(pid)
    return served


def base_gets(samples: Samples) -> float:
    return value(samples, REQUESTS, code="200", handler="base", method="get")


def test_a_scrape_sums_every_worker(metrics_registry: tuple[RunningRegistry, Scraper]) -> None:
    registry, scraper = metrics_registry
    before = base_gets(scraper.settled(REQUESTS))
    served = fresh_connection_requests(registry, 60)
    assert len(served) >= 2, "the requests must have been spread over several workers"
    scraper.until(lambda samples: expect_value(base_gets(samples), before + 60))  # each worker flushed
    for _ in range(5):  # whichever worker answers the scrape, it reports the sum
        assert base_gets(scraper.samples()) == before + 60


def test_a_worker_file_still_being_made_is_no_failure(start_registry: StartRegistry, tmp_path: Path) -> None:
    """A worker starting creates its metric file empty and sizes it a moment later: a scrape in
    between answers with every other file's figures, not a 500."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    port = free_port()
    registry = start_registry({"http": debug_section(port)}, workers=2, env={"TMPDIR": str(temporary)})
    (directory,) = temporary.glob("dockyard-metrics-*")
    fresh_connection_requests(registry, 3)
    (directory / "counter_999999999.db").touch()  # as a worker's file is, before it is sized

    def counted(samples: Samples) -> None:
        assert base_gets(samples) >= 3

    Scraper(port).until(counted)  # each scrape fails (a 500) where the empty file is read


def test_metrics_are_never_on_the_public_port(metrics_registry: tuple[RunningRegistry, Scraper]) -> None:
    registry, _ = metrics_registry
    response = httpx.get(f"{registry.url}/metrics")
    assert response.status_code == 404
    assert "registry_http" not in response.text


def test_unmatched_paths_share_one_series(metrics_registry: tuple[RunningRegistry, Scraper]) -> None:
    registry, scraper = metrics_registry
    for index in range(5):
        httpx.get(f"{registry.url}/scan/{index}/{os.urandom(4).hex()}")
    httpx.get(f"{registry.url}/ui/")  # a mounted application: its one name

    def counted(samples: Samples) -> None:
        paths = {dict(labels)["handler"] for name, labels in samples if name == REQUESTS}
        assert "unmatched" in paths
        assert not any("/" in handler for handler in paths)
        assert value(samples, REQUESTS, code="404", handler="unmatched", method="get") >= 5
        assert (
            sum(
                v for (name, labels), v in samples.items() if name == REQUESTS and ("handler", "ui") in labels
            )
            >= 1
        )

    scraper.until(counted)


def test_push_and_pull_figures(metrics_registry: tuple[RunningRegistry, Scraper]) -> None:
    registry, scraper = metrics_registry
    before = scraper.settled()
    uploads = value(before, "registry_uploads_in_progress")
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        layer = os.urandom(300_000)
        location = expect(client.post("/v2/metrics/pushes/blobs/uploads/"), 202).headers["Location"]
        scraper.until(lambda during: expect_value(value(during, "registry_uploads_in_progress"), uploads + 1))
        expect(client.patch(location, content=layer), 202)
        expect(client.put(location, params={"digest": digest_of(layer)}), 201)
        manifest = push_image(client, "metrics/pushes", "v1", layer_sizes=(1000,))
        expect(client.get(f"/v2/metrics/pushes/blobs/{digest_of(layer)}"), 200)
        expect(client.get("/v2/metrics/pushes/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
    scraper.until(lambda after: push_and_pull_figures(before, after, len(layer), len(manifest)))


def push_and_pull_figures(before: Samples, after: Samples, layer: int, manifest: int) -> None:
    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "registry_uploads_in_progress") == value(before, "registry_uploads_in_progress")
    assert grew("registry_pushed_bytes_total", type="blob") >= layer + 1000
    assert grew("registry_pushed_bytes_total", type="manifest") == manifest
    assert grew("registry_pulled_bytes_total", type="blob") == layer
    assert grew("registry_pulled_bytes_total", type="manifest") == manifest
    assert grew(REQUESTS, code="201", handler="manifest", method="put") == 1
    assert grew(REQUESTS, code="201", handler="blob_upload_chunk", method="put") == 1
    assert grew(REQUESTS, code="202", handler="blob_upload_chunk", method="patch") == 1
    assert grew("registry_http_request_duration_seconds_count", handler="manifest", method="get") == 1
    assert grew("registry_http_response_size_bytes_sum", handler="blob") == layer
    # A request's size counts its request line and headers: the manifest's PUT and GET each
    # carry its path at least.
    path = len("/v2/metrics/pushes/manifests/v1")
    assert grew("registry_http_request_size_bytes_sum", handler="manifest") > manifest + 2 * path
    assert grew("registry_storage_action_seconds_count", action="Move", driver="filesystem") >= 2
    assert grew("registry_storage_action_seconds_count", action="PutContent", driver="filesystem") >= 2
    assert grew("registry_auth_requests_total", credentials="none", outcome="granted") >= 8


def held_upload(registry: RunningRegistry) -> tuple[http.client.HTTPConnection, int]:
    """A PATCH whose body never ends, in flight on some worker; the connection and that worker."""
    assert registry.process is not None
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        location = expect(client.post("/v2/metrics/held/blobs/uploads/"), 202).headers["Location"]
    connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
    connection.putrequest("PATCH", location.removeprefix(registry.url))
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"1000\r\n" + b"x" * 0x1000 + b"\r\n")
    leader = registry.process.pid
    pid = until(
        lambda: serving_process(connection, registry.port, leader), what="for a worker to take the PATCH"
    )
    return connection, pid


def expect_value(seen: float, expected: float) -> None:
    assert seen == expected


def test_a_replaced_worker_keeps_its_totals_and_drops_its_in_flight(
    metrics_registry: tuple[RunningRegistry, Scraper],
) -> None:
    registry, scraper = metrics_registry
    assert registry.process is not None
    fresh_connection_requests(registry, 30)
    connection, victim = held_upload(registry)
    in_flight = ("registry_http_in_flight_requests", (("handler", "blob_upload_chunk"),))
    until(lambda: scraper.samples().get(in_flight) == 1)
    before = scraper.settled(REQUESTS)
    totals = {key: v for key, v in before.items() if key[0] == REQUESTS}
    leader = registry.process.pid
    workers = set(process_group(leader)) - {leader}

    os.kill(victim, signal.SIGKILL)
    connection.close()
    until(lambda: len(set(process_group(leader)) - workers - {leader}) == 1)
    fresh_connection_requests(registry, 10)  # the replacement starts, and serves

    def kept_and_dropped(after: Samples) -> None:
        assert after.get(in_flight) == 0
        for key, total in totals.items():
            assert after.get(key, 0) >= total, key
        assert base_gets(after) == base_gets(before) + 10

    scraper.until(kept_and_dropped)


def test_a_killed_workers_published_counts_reach_the_next_scrape(
    metrics_registry: tuple[RunningRegistry, Scraper],
) -> None:
    """``kill -9`` loses at most what a worker counted since its last flush: once that flush is
    past, every request it served is in the next scrape, exactly."""
    registry, scraper = metrics_registry
    assert registry.process is not None
    before = base_gets(scraper.settled(REQUESTS))
    connection, victim = worker_connection(registry)  # one GET /v2/, then 20 more on it
    for _ in range(20):
        assert call(connection, "GET", "/v2/").status == 200
    # Killed once a scrape shows its flush (a fixed wait can end before a loaded machine flushes).
    until(lambda: base_gets(scraper.samples()) == before + 21)
    os.kill(victim, signal.SIGKILL)
    connection.close()
    leader = registry.process.pid
    until(lambda: victim not in process_group(leader))
    assert base_gets(scraper.samples()) == before + 21


UPLOADS = "registry_uploads_in_progress"


def worker_connection(registry: RunningRegistry, other_than: int | None = None) -> tuple[HTTPConnection, int]:
    """A kept-alive connection and the worker serving it, one other than ``other_than``."""
    assert registry.process is not None
    for _ in range(100):
        connection = HTTPConnection("127.0.0.1", registry.port, timeout=30)
        connection.request("GET", "/v2/")
        pid = serving_process(connection, registry.port, registry.process.pid)
        connection.getresponse().read()
        if pid is not None and pid != other_than:
            return connection, pid
        connection.close()
    raise AssertionError(f"no worker other than {other_than} took a connection")


def call(connection: HTTPConnection, method: str, target: str, body: bytes = b"") -> HTTPResponse:
    connection.request(method, target, body=body)
    response = connection.getresponse()
    response.read()
    return response


def open_upload(registry: RunningRegistry, repository: str) -> tuple[str, int]:
    """A new upload session's path (and query), and the worker that opened it."""
    connection, pid = worker_connection(registry)
    response = call(connection, "POST", f"/v2/{repository}/blobs/uploads/")
    connection.close()
    assert response.status == 202
    location = urlsplit(response.getheader("Location") or "")
    return location.path + (f"?{location.query}" if location.query else ""), pid


def with_digest(target: str, content: bytes) -> str:
    return f"{target}{'&' if '?' in target else '?'}digest={digest_of(content)}"


def test_uploads_in_progress_whichever_worker_closes_them(
    metrics_registry: tuple[RunningRegistry, Scraper],
) -> None:
    registry, scraper = metrics_registry
    before = value(scraper.settled(UPLOADS), UPLOADS)
    finished, cancelled, refused, kept = (open_upload(registry, "metrics/sessions") for _ in range(4))
    scraper.until(lambda samples: expect_value(value(samples, UPLOADS), before + 4))
    layer = os.urandom(1000)
    for opener, method, path, status in (
        (finished[1], "PUT", with_digest(finished[0], layer), 201),
        (cancelled[1], "DELETE", cancelled[0], 204),
        (refused[1], "PUT", with_digest(refused[0], b"other content"), 400),  # the session is discarded
    ):
        connection, _ = worker_connection(registry, other_than=opener)
        assert call(connection, method, path, layer if method == "PUT" else b"").status == status
        connection.close()
    assert call(worker_connection(registry)[0], "GET", refused[0]).status == 404
    scraper.until(lambda samples: expect_value(value(samples, UPLOADS), before + 1))
    connection, _ = worker_connection(registry, other_than=kept[1])
    assert call(connection, "DELETE", kept[0]).status == 204
    assert value(scraper.settled(UPLOADS), UPLOADS) == before


def test_uploads_in_progress_counts_each_session_closed_once(start_registry: StartRegistry) -> None:
    """Sessions closed by several requests at once, from several workers (two finishing PUTs and
    a DELETE, or a failed PUT and a DELETE): each is counted closed once, by whichever closed it."""
    port = free_port()
    registry = start_registry({"http": debug_section(port)}, workers=3)
    scraper = Scraper(port)
    layer = os.urandom(1 << 20)

    def racing(target: str, requests: list[tuple[str, str, bytes]]) -> list[int]:
        connections = [worker_connection(registry)[0] for _ in requests]
        with ThreadPoolExecutor(len(requests)) as pool:
            statuses = list(
                pool.map(lambda pair: call(pair[0], *pair[1]).status, zip(connections, requests, strict=True))
            )
        for connection in connections:
            connection.close()
        return statuses

    for round_ in range(12):
        target, _ = open_upload(registry, f"metrics/race{round_ % 3}")
        connection, _ = worker_connection(registry)
        assert call(connection, "PATCH", target, layer).status == 202
        connection.close()
        put = ("PUT", with_digest(target, layer), b"")
        wrong = ("PUT", with_digest(target, b"other content"), b"")
        requests = [put, put, ("DELETE", target, b"")] if round_ % 2 else [wrong, ("DELETE", target, b"")]
        statuses = racing(target, requests)
        assert set(statuses) <= {201, 204, 400, 404}, statuses
    assert value(scraper.settled(UPLOADS), UPLOADS) == 0


def test_uploads_in_progress_after_a_restart_and_a_purge(start_registry: StartRegistry) -> None:
    port = free_port()
    registry = start_registry({"http": debug_section(port)}, workers=2)
    scraper = Scraper(port)
    opened_before = [open_upload(registry, "metrics/restarted")[0] for _ in range(2)]
    scraper.until(lambda samples: expect_value(value(samples, UPLOADS), 2))
    registry.restart()  # counting starts again: what is open from before is not counted
    assert value(scraper.settled(UPLOADS), UPLOADS) == 0
    connection, _ = worker_connection(registry)
    assert call(connection, "DELETE", opened_before[0]).status == 204
    assert value(scraper.settled(UPLOADS), UPLOADS) == 0  # not -1: the session was older
    purging = {"uploadpurging": {"enabled": True, "age": "10s", "interval": "1s"}}
    registry.config["storage"]["maintenance"] = purging
    registry.restart()
    for _ in range(3):
        open_upload(registry, "metrics/abandoned")
    scraper.until(lambda samples: expect_value(value(samples, UPLOADS), 3))
    # Purged, by whichever worker, the older one too.
    until(lambda: value(scraper.samples(), UPLOADS) == 0, timeout=90, what="for the abandoned uploads to go")
    assert call(worker_connection(registry)[0], "GET", opened_before[1]).status == 404
    assert value(scraper.settled(UPLOADS), UPLOADS) == 0


def test_the_next_registry_removes_the_metrics_of_one_killed_outright(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """A registry killed with ``kill -9`` cannot remove its workers' metric files; the next one
    started with the same temporary directory does, and leaves those of a running one alone."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"TMPDIR": str(temporary)}
    killed = start_registry({"http": debug_section(free_port())}, workers=2, env=env)
    (killed_files,) = temporary.iterdir()
    running = start_registry({"http": debug_section(free_port())}, workers=2, env=env)
    (running_files,) = set(temporary.iterdir()) - {killed_files}
    assert killed_files.name.startswith("dockyard-metrics-")
    fresh_connection_requests(killed, 5)
    killed.kill9()
    assert set(temporary.iterdir()) == {killed_files, running_files}  # nothing else left behind
    started = start_registry({"http": debug_section(free_port())}, workers=2, env=env)
    assert not killed_files.exists()
    assert running_files.exists()
    assert len(list(temporary.iterdir())) == 2  # the running registry's and the new one's
    for registry in (running, started):
        registry.stop()
    assert list(temporary.iterdir()) == []


def test_an_older_versions_metric_directories_go_once_their_processes_ended(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    """Directories an older version left (no lock file: its processes named by its files) are
    removed by the next registry started there once none of those processes runs; one still
    running, and one being made (no lock file yet, just made), are left alone."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    dead_pid = _ended_pid()
    long_ago = time.time() - 3600

    def older_version(name: str, pid: int, age: float) -> Path:
        directory = temporary / f"dockyard-metrics-{name}"
        directory.mkdir()
        for kind in ("counter", "histogram", "gauge_livesum"):
            (directory / f"{kind}_{pid}.db").write_bytes(b"\0" * 16)
        os.utime(directory, (age, age))
        return directory

    dead = older_version("dead", dead_pid, long_ago)
    running = older_version("running", os.getpid(), long_ago)
    empty = temporary / "dockyard-metrics-empty"  # an older version's, that never counted
    empty.mkdir()
    os.utime(empty, (long_ago, long_ago))
    being_made = temporary / "dockyard-metrics-new"
    being_made.mkdir()
    registry = start_registry({"http": debug_section(free_port())}, workers=2, env={"TMPDIR": str(temporary)})
    assert not dead.exists()
    assert not empty.exists()
    assert running.exists()
    assert being_made.exists()
    registry.stop()
    assert sorted(temporary.iterdir()) == sorted([running, being_made])


def _ended_pid() -> int:
    """The pid of a process that ran and ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
