"""The tags page shows when each tag was pushed and last pulled, from the tag records."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from tests.lifecycle.commands import push
from tests.support.images import random_image
from tests.support.registry import StartRegistry
from tests.support.served import Served

from .browser import Browser
from .conftest import ui_path

pytestmark = [pytest.mark.clients, pytest.mark.slow]

FAST_FLUSH = {"storage": {"maintenance": {"pullrecords": {"flushinterval": "1s"}}}}
PULLED = "docker/registry/v2/repositories/times/app/_dockyard/tags/used/pulled"


def test_tags_page_shows_pushed_and_last_pulled_times(
    browser: Browser, start_registry: StartRegistry
) -> None:
    registry = start_registry(FAST_FLUSH)
    with Served(registry.url) as served:
        push(served, "times/app", "used", random_image(layers=1))
        push(served, "times/app", "unused", random_image(layers=1))
        assert served.status("GET", "/v2/times/app/manifests/used") == 200
    deadline = time.monotonic() + 60
    while not (registry.root / PULLED).exists():
        assert time.monotonic() < deadline, "the pull was not recorded"
        time.sleep(0.2)

    browser.visit(ui_path(registry, "/r/times/app"))
    rows = {
        row.find_element(By.CSS_SELECTOR, "th").text: row.find_element(By.CSS_SELECTOR, "td.pulled").text
        for row in browser.find_all("tbody tr")
    }
    assert rows["unused"] == "not recorded"
    assert "UTC" in rows["used"]
    assert "just now" in rows["used"] or "minute" in rows["used"], rows["used"]
    assert browser.accessibility_violations() == []
    browser.screenshot("repository-tag-times")
