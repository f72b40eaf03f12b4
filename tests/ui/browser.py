"""Debian's headless Chromium driven through its chromedriver with Selenium, axe-core injected
into pages for an accessibility check, and screenshots kept under ``test-artifacts/ui``."""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.registry import PROJECT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = PROJECT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = PROJECT / "test-artifacts" / "ui"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
SERIOUS = {"serious", "critical"}


class Browser:
    """One Chromium with a fresh profile; ``visit`` loads a page and waits until it is ready."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def visit(self, url: str) -> None:
        self.driver.get(url)

    @property
    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    @property
    def source(self) -> str:
        return str(self.driver.page_source)

    def follow(self, css: str) -> None:
        """Click what ``css`` finds (a link, a submit button) and wait for the next page."""
        page = self.find("html")
        self.find(css).click()
        WebDriverWait(self.driver, 30).until(lambda _: _left_document(page))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def screenshot(self, name: str, width: int = 1280) -> Path:
        """The whole page at ``width`` pixels, saved as ``test-artifacts/ui/<name>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.driver.set_window_size(width, 900)
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": width, "height": min(size["height"], 6000), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        self.driver.set_window_size(1280, 900)
        return path

    def accessibility_violations(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page (WCAG 2.1 AA rules)."""
        assert AXE.exists(), f"no axe-core at {AXE}: `./dev test` installs it"
        self.driver.execute_script(AXE.read_text())
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})"
            ".then(r => done(r.violations), e => done([{id: 'axe-error', impact: 'critical',"
            " description: String(e), nodes: []}]));"
        )
        return [
            {"id": v["id"], "impact": v["impact"], "description": v["description"],
             "nodes": [n.get("html", "")[:200] for n in v["nodes"][:3]]}
            for v in result
            if v.get("impact") in SERIOUS
        ]  # fmt: skip

    def alerts_fired(self) -> bool:
        """Whether a page script opened an alert (what injected script would do)."""
        try:
            self.driver.switch_to.alert.dismiss()
        except Exception:
            return False
        return True


@contextmanager
def chromium(javascript: bool = True, dark: bool = False) -> Iterator[Browser]:
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(60)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _left_document(element: WebElement) -> bool:
    """Whether the page holding ``element`` is gone. Mid-navigation chromedriver may say so with
    an inspector error ("node does not belong to the document") instead of a stale reference."""
    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException among them
        return True
    return False
