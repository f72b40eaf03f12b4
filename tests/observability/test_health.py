"""health.storagedriver: a periodic storage check drives /readyz, /debug/health and, while it
fails, a 503 on every request, as in Distribution."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import pytest

from registry.observability.health import StorageHealth
from tests.support.processes import free_port
from tests.support.pushing import push_blob
from tests.support.registry import StartRegistry
from tests.support.waiting import TIMEOUT

pytestmark = pytest.mark.slow


def until_every_answer(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Until ``check`` holds ten times in a row (the requests reach several workers)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 10:
        assert time.monotonic() < deadline, "timed out"
        streak = streak + 1 if check() else 0
        if not streak:
            time.sleep(0.1)


def test_a_failing_storage_turns_the_registry_unhealthy_and_back(start_registry: StartRegistry) -> None:
    debug_port = free_port()
    registry = start_registry(
        {
            "http": {"debug": {"addr": f"127.0.0.1:{debug_port}"}},
            "health": {"storagedriver": {"enabled": True, "interval": "200ms", "threshold": 2}},
        }
    )
    health = f"http://127.0.0.1:{debug_port}/debug/health"
    with httpx.Client(base_url=registry.url, timeout=10) as client:
        push_blob(client, "health/app", os.urandom(100))
        until_every_answer(lambda: httpx.get(health).status_code == 200)
        assert httpx.get(health).json() == {}
        assert client.get("/readyz").json() == {"storage": "ok"}
        assert client.get("/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{debug_port}/metrics").status_code == 404  # not enabled
        assert client.get("/debug/health").status_code == 404  # the debug listener's alone

        # A symlink loop where the layout starts: every stat of the storage fails.
        layout = registry.root / "docker"
        layout.rename(registry.root / "docker.aside")
        layout.symlink_to(layout)
        try:
            until_every_answer(lambda: httpx.get(health).status_code == 503)
            failing = httpx.get(health).json()
            assert list(failing) == ["storagedriver_filesystem"]
            assert "symbolic links" in failing["storagedriver_filesystem"]
            until_every_answer(lambda: client.get("/readyz").status_code == 503)
            for path in ("/", "/v2/", "/v2/health/app/tags/list"):
                refused = client.get(path)
                assert refused.status_code == 503, path
                assert refused.json()["errors"][0]["code"] == "UNAVAILABLE"
        finally:
            layout.unlink()
            (registry.root / "docker.aside").rename(layout)
        until_every_answer(lambda: client.get("/v2/").status_code == 200)
        # The debug listener's process checks on its own interval.
        until_every_answer(lambda: httpx.get(health).json() == {})
        assert client.get("/readyz").json() == {"storage": "ok"}


async def test_threshold_failures_in_a_row_make_it_unhealthy_and_one_success_heals() -> None:
    outcomes = [OSError("down"), OSError("down"), OSError("still down"), None]

    async def check() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    health = StorageHealth("filesystem", check, interval=1.0, threshold=3)
    seen = []
    for _ in range(4):
        await health.run_once()
        seen.append((health.healthy, health.failing()))
    assert seen == [
        (True, {}),
        (True, {}),
        (False, {"storagedriver_filesystem": "still down"}),
        (True, {}),
    ]
