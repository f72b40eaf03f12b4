"""The repository list shows each repository's size and last push time from the usage record:
nothing before any walk wrote one, the recorded figures after."""

from __future__ import annotations

import re

import httpx
import pytest

from registry.ui.pages import human_size
from tests.lifecycle.commands import dockyard
from tests.support.images import random_image
from tests.support.pushing import push_content
from tests.support.registry import StartRegistry

from .browser import chromium
from .conftest import ui_path
from .test_browsing import WIDER_THAN_THE_PAGE

ROW = re.compile(r'<li><a href="/ui/r/([^"]+)">[^<]+</a>\s*<span class="usage">([^<]+)· pushed <span title')


def test_the_list_shows_recorded_sizes_and_push_times(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        push_content(client, "sizes/small", "1.0", random_image(1, 1024))
        push_content(client, "sizes/large", "1.0", random_image(3, 64 * 1024))
        before = client.get("/ui/")
        assert before.status_code == 200
        assert 'class="usage"' not in before.text
        assert "Sizes as of" not in before.text

        assert dockyard(registry.config_path, "usage").returncode == 0
        record = {r["name"]: r for r in client.get("/v2/_dockyard/usage").json()["repositories"]}
        after = client.get("/ui/")
        shown = {name: text.strip() for name, text in ROW.findall(after.text)}
        assert shown == {name: human_size(r["referenced_bytes"]) for name, r in record.items()}
        assert shown["sizes/small"] != shown["sizes/large"]
        assert "Sizes as of" in after.text


@pytest.mark.clients
@pytest.mark.slow
def test_the_sizes_pass_the_accessibility_check_light_dark_and_narrow(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        push_content(
            client, "sizes/a-rather-long-team-name/with-a-long-image-name", "1.0", random_image(2, 4096)
        )
        push_content(client, "sizes/b", "1.0", random_image(1, 1024))
    assert dockyard(registry.config_path, "usage").returncode == 0
    with chromium() as light:
        light.visit(ui_path(registry))
        assert len(light.find_all(".repositories .usage")) == 2
        assert light.accessibility_violations() == []
        light.screenshot("repositories-sizes")
    with chromium(dark=True) as dark:
        dark.visit(ui_path(registry))
        assert dark.accessibility_violations() == []
        dark.driver.set_window_size(390, 844)
        assert dark.driver.execute_script(WIDER_THAN_THE_PAGE) == []
        dark.screenshot("repositories-sizes-phone", width=390)
