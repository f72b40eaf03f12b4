"""Browsing a registry in headless Chromium: repositories, search, tags, one image, an index,
referrers, copyable pull lines; each page checked by axe-core and saved as a screenshot."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from .browser import Browser, chromium
from .conftest import (
    DESCRIPTION,
    HTML_LABEL,
    LONG_LABEL,
    SCRIPT_LABEL,
    SIGNATURE_TYPE,
    UNICODE_LABEL,
    Filled,
    ui_path,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow]

WIDER_THAN_THE_PAGE = """
const width = document.documentElement.clientWidth;
return [...document.querySelectorAll("body *")]
  .filter(e => !e.closest(".scroll") && e.getBoundingClientRect().right > width + 1)
  .map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right));
"""


def checked(browser: Browser, screenshot: str) -> None:
    """No serious or critical accessibility violation, no script ran that the page did not
    ship, and a screenshot to look at."""
    assert browser.accessibility_violations() == []
    assert not browser.alerts_fired()
    browser.screenshot(screenshot)


def test_repositories_and_search(browser: Browser, open_registry: Filled) -> None:
    browser.visit(ui_path(open_registry.registry))
    names = [link.text for link in browser.find_all(".repositories a")]
    assert names == sorted(names)  # other tests add repositories of their own
    assert [name for name in names if name.startswith("team/")] == ["team/app", "team/layers", "team/multi"]
    checked(browser, "repositories")
    search = browser.find("#q")
    search.send_keys("mult")
    # Search as you type replaces the list without a page load...
    WebDriverWait(browser.driver, 10).until(
        lambda _: [link.text for link in browser.find_all(".repositories a")] == ["team/multi"]
    )
    assert "q=mult" in browser.driver.current_url
    # ...and the form still works as a form.
    search.clear()
    search.send_keys("layers", Keys.ENTER)
    WebDriverWait(browser.driver, 10).until(lambda _: "q=layers" in browser.driver.current_url)
    assert [link.text for link in browser.find_all(".repositories a")] == ["team/layers"]
    browser.visit(ui_path(open_registry.registry, "/?q=nothing-matches"))
    assert "No repository you may pull matches" in browser.text


def test_tags_of_a_repository(browser: Browser, open_registry: Filled) -> None:
    registry = open_registry.registry
    browser.visit(ui_path(registry, "/r/team/app"))
    signed = browser.find("tbody tr")
    assert signed.find_element(By.CSS_SELECTOR, "a[href$='#referrers']").text == "1"  # the signature
    browser.visit(ui_path(registry, "/r/team/multi"))
    row = browser.find("tbody tr")
    assert row.find_element(By.CSS_SELECTOR, "th").text == "latest"
    assert "linux/amd64, linux/arm64/v8, linux/arm/v7" in row.text
    assert "UTC" in row.text  # the pushed time
    pull = row.find_element(By.CSS_SELECTOR, ".pull code").text
    assert pull == f"docker pull {registry.host}/team/multi:latest"
    copy = row.find_element(By.CSS_SELECTOR, "button.copy")
    assert copy.is_displayed()
    assert copy.get_attribute("data-copy") == pull
    checked(browser, "repository-tags")


def test_one_image_with_layers_configuration_and_referrers(browser: Browser, open_registry: Filled) -> None:
    registry = open_registry.registry
    browser.visit(ui_path(registry, "/r/team/app/-/manifest/1.0"))
    text = browser.text
    assert open_registry.app_digest in text
    assert f"docker pull {registry.host}/team/app:1.0" in text
    assert f"docker pull {registry.host}/team/app@{open_registry.app_digest}" in text
    manifest = httpx.get(
        f"{registry.url}/v2/team/app/manifests/1.0",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    rows = [row.text for row in browser.find_all("#layers tbody tr")]
    assert len(rows) == len(manifest["layers"]) >= 2
    for row, layer in zip(rows, manifest["layers"], strict=True):
        assert layer["digest"] in row.replace("\n", "")
    assert '["/bin/app","--serve"]' in text.replace(" ", "")
    assert "MODE=production" in text
    assert "8080/tcp" in text
    assert DESCRIPTION in text
    # Attacker-controlled labels appear as text, never as markup.
    for label in (SCRIPT_LABEL, HTML_LABEL, UNICODE_LABEL):
        assert label in text
    # A very long one is folded (it still works without JavaScript) and shown whole on request.
    summary = browser.find("details summary")
    assert summary.text.endswith("(4096 characters)")
    folded = browser.find("details")
    assert folded.get_attribute("open") is None
    summary.click()
    assert folded.get_attribute("open") is not None
    assert LONG_LABEL[:4096] in browser.text.replace("\n", "")
    injected = "return document.querySelectorAll('main script, main img').length"
    assert browser.driver.execute_script(injected) == 0
    assert SIGNATURE_TYPE in text
    assert open_registry.signature_digest in text
    checked(browser, "image")
    browser.follow(f"a[href$='{open_registry.signature_digest}']")
    assert f"Artifact type\n{SIGNATURE_TYPE}" in browser.text
    assert open_registry.app_digest in browser.text  # what it refers to
    checked(browser, "referrer")


def test_an_index_and_its_platforms(browser: Browser, open_registry: Filled) -> None:
    browser.visit(ui_path(open_registry.registry, "/r/team/multi/-/manifest/latest"))
    rows = browser.find_all("#platforms tbody tr")
    platforms = [row.find_element(By.CSS_SELECTOR, "th").text for row in rows]
    assert platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
    checked(browser, "index")
    browser.follow("#platforms tbody tr:nth-child(2) a")
    assert "linux/arm64/v8" in browser.text
    browser.visit(ui_path(open_registry.registry, "/r/team/layers/-/manifest/v1"))
    assert len(browser.find_all("#layers tbody tr")) == 8
    checked(browser, "image-many-layers")


def test_works_without_javascript_and_in_dark_narrow_layouts(open_registry: Filled) -> None:
    registry = open_registry.registry
    with chromium(javascript=False) as plain:
        plain.visit(ui_path(registry, "/?q=app"))
        assert [link.text for link in plain.find_all(".repositories a")] == ["team/app"]
        plain.visit(ui_path(registry, "/r/team/app"))
        assert not plain.find("button.copy").is_displayed()  # nothing to copy with
        assert f"docker pull {registry.host}/team/app:1.0" in plain.text
    with chromium(dark=True) as dark:
        dark.visit(ui_path(registry, "/r/team/app/-/manifest/1.0"))
        background = dark.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)"
        assert dark.accessibility_violations() == []
        dark.screenshot("image-dark")
        dark.driver.set_window_size(390, 844)
        overflowing = dark.driver.execute_script(WIDER_THAN_THE_PAGE)
        assert overflowing == []  # no sideways scrolling of the page at a phone's width
        dark.screenshot("image-phone", width=390)


def test_keyboard_reaches_everything_with_a_visible_focus(browser: Browser, open_registry: Filled) -> None:
    browser.visit(ui_path(open_registry.registry, "/r/team/app"))
    body = browser.find("body")
    body.send_keys(Keys.TAB)
    skip = browser.driver.switch_to.active_element
    assert skip.text == "Skip to content"
    outline = browser.driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", skip)
    assert outline == "solid"
    skip.send_keys(Keys.ENTER)
    reached = []
    for _ in range(12):
        browser.driver.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(browser.driver.switch_to.active_element.get_attribute("textContent"))
    assert {"1.0", "Copy", "Delete tag 1.0"} <= set(reached), reached


def test_root_sends_browsers_to_the_interface(open_registry: Filled) -> None:
    url = open_registry.registry.url
    browser_visit = httpx.get(url + "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert browser_visit.status_code == 302
    assert browser_visit.headers["location"] == "/ui/"
    balancer = httpx.get(url + "/")
    assert (balancer.status_code, balancer.json()) == (200, {})
