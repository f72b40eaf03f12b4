"""Signing in and out, what each account sees, and deleting: in headless Chromium against
registries with htpasswd and with the built-in token server, and without access control."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.support.images import random_image
from tests.support.pushing import push_content
from tests.support.registry import RunningRegistry, StartRegistry

from .browser import Browser, chromium
from .conftest import PASSWORDS, Filled, ui_path

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def sign_in(browser: Browser, registry: RunningRegistry, user: str, password: str) -> None:
    browser.visit(ui_path(registry, "/login"))
    browser.find("#username").send_keys(user)
    browser.find("#password").send_keys(password)
    browser.follow("main form button[type=submit]")


def sign_out(browser: Browser) -> None:
    browser.follow("header form button")


def listed(browser: Browser) -> list[str]:
    return [link.text for link in browser.find_all(".repositories a")]


def test_htpasswd_sign_in_and_out(htpasswd_ui_registry: RunningRegistry) -> None:
    registry = htpasswd_ui_registry
    with chromium() as browser:
        browser.visit(ui_path(registry))
        assert listed(browser) == []  # nobody pulls anonymously here
        assert "Sign in to see your repositories" in browser.text
        assert browser.accessibility_violations() == []
        browser.follow("header a.button")
        assert browser.accessibility_violations() == []
        browser.screenshot("login")
        sign_in(browser, registry, "alice", "wrong")
        assert "Incorrect username or password." in browser.text
        assert browser.accessibility_violations() == []
        sign_in(browser, registry, "alice", PASSWORDS["alice"])
        assert "Signed in as alice" in browser.text
        assert listed(browser) == ["alice/app"]
        cookie = browser.driver.get_cookie("dockyard_session")
        assert cookie is not None
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["secure"] is False  # plain HTTP here; nginx with TLS: see test_safety
        assert PASSWORDS["alice"] not in cookie["value"]
        browser.visit(ui_path(registry, "/r/alice/app"))
        assert browser.find_all("a.danger")  # htpasswd users may do everything
        assert browser.accessibility_violations() == []
        browser.screenshot("repository-signed-in")
        sign_out(browser)
        assert "Signed in as" not in browser.text
        assert listed(browser) == []
        browser.visit(ui_path(registry, "/r/alice/app"))
        assert "Repository name not known to registry" in browser.text


def test_token_accounts_see_what_their_rules_allow(token_ui_registry: RunningRegistry) -> None:
    registry = token_ui_registry
    with chromium() as browser:
        browser.visit(ui_path(registry))
        assert listed(browser) == ["public/site"]  # anonymous pull is allowed there only
        browser.visit(ui_path(registry, "/r/public/site"))
        assert browser.find_all("a.danger") == []
        sign_in(browser, registry, "bob", PASSWORDS["bob"])
        assert "Signed in as bob" in browser.text
        assert listed(browser) == ["bob/tool", "public/site"]
        browser.visit(ui_path(registry, "/r/bob/tool"))
        assert [link.get_attribute("textContent") for link in browser.find_all("a.danger")] == [
            "Delete tag 1.0"
        ]
        browser.visit(ui_path(registry, "/r/public/site"))
        assert browser.find_all("a.danger") == []  # bob may push there, but not delete
        browser.visit(ui_path(registry, "/r/public/site/-/delete/1.0"))
        assert "Requested access to the resource is denied" in browser.text
        assert browser.accessibility_violations() == []
        browser.screenshot("denied")
        browser.visit(ui_path(registry, "/r/alice/app"))
        assert "Repository name not known to registry" in browser.text
        sign_out(browser)
        sign_in(browser, registry, "alice", PASSWORDS["alice"])
        assert listed(browser) == ["alice/app", "public/site"]
        browser.visit(ui_path(registry, "/r/alice/app"))
        browser.follow("a.danger")
        browser.follow("main form button.danger")
        assert "Deleted 1.0." in browser.text
        assert browser.find_all("tbody tr") == []
        sign_out(browser)
        assert listed(browser) == ["public/site"]


def test_delete_a_tag_and_a_manifest_after_confirming(browser: Browser, open_registry: Filled) -> None:
    registry = open_registry.registry
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        push_content(client, "scratch/doomed", "keep", random_image(1, 1024))
        digest = push_content(client, "scratch/doomed", "drop", random_image(1, 1024))
        push_content(client, "scratch/doomed", "drop-too", random_image(1, 1024))
        client.put(
            "/v2/scratch/doomed/manifests/drop-too",
            content=client.get(f"/v2/scratch/doomed/manifests/{digest}").content,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ).raise_for_status()
    browser.visit(ui_path(registry, "/r/scratch/doomed/-/delete/keep"))
    assert "Delete tag keep?" in browser.text
    browser.follow("main a.button")  # cancel
    assert httpx.get(f"{registry.url}/v2/scratch/doomed/manifests/keep").status_code == 200
    browser.visit(ui_path(registry, f"/r/scratch/doomed/-/manifest/{digest}"))
    browser.follow("a.button.danger")
    assert "and with it the tags drop, drop-too" in browser.text
    assert browser.accessibility_violations() == []
    browser.screenshot("delete-confirmation")
    browser.follow("main form button.danger")
    assert f"Deleted {digest}." in browser.text
    tags = [row.find_element(By.CSS_SELECTOR, "th").text for row in browser.find_all("tbody tr")]
    assert tags == ["keep"]
    assert httpx.get(f"{registry.url}/v2/scratch/doomed/manifests/{digest}").status_code == 404
    assert httpx.get(f"{registry.url}/v2/scratch/doomed/tags/list").json()["tags"] == ["keep"]


def test_no_delete_where_deletes_are_disabled_or_storage_is_read_only(start_registry: StartRegistry) -> None:
    disabled = start_registry({"storage": {"delete": {"enabled": False}}})
    with httpx.Client(base_url=disabled.url, timeout=30) as client:
        push_content(client, "team/kept", "1.0", random_image(1, 1024))
    read_only = start_registry(
        {"storage": {**disabled.storage, "maintenance": {"readonly": {"enabled": True}}}}
    )
    for registry in (disabled, read_only):
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            page = client.get("/ui/r/team/kept")
            assert "docker pull" in page.text
            assert "/-/delete/" not in page.text
            confirm = client.get("/ui/r/team/kept/-/delete/1.0")
            assert confirm.status_code == 403
