"""What the interface refuses and what it sends along: escaping, security headers, CSRF tokens,
cross-origin forms, forged cookies, bad names."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from registry.ui.session import Sealer, new_session
from tests.auth.helpers import write_htpasswd
from tests.support.images import random_image
from tests.support.pushing import push_content
from tests.support.registry import RunningRegistry, StartRegistry

from .conftest import HTML_LABEL, PASSWORDS, SCRIPT_LABEL, Filled

pytestmark = pytest.mark.clients  # the registry they browse was filled by buildah and skopeo

CSP = re.compile(r"default-src 'none'; script-src 'self'; style-src 'self';.*frame-ancestors 'none'")


def client(registry: RunningRegistry, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=f"{registry.url}/ui", timeout=30, headers=headers)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_pushed_text_is_escaped_and_headers_are_strict(open_registry: Filled) -> None:
    with client(open_registry.registry) as browser:
        page = browser.get("/r/team/app/-/manifest/1.0")
    assert page.status_code == 200
    assert CSP.match(page.headers["content-security-policy"])
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert SCRIPT_LABEL not in page.text
    assert HTML_LABEL not in page.text
    assert "&lt;script&gt;alert(&#34;label&#34;)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text  # the only script is the interface's own file
    assert page.text.count("<script ") == 1
    assert 'src="/ui/static/ui.js"' in page.text


@pytest.mark.parametrize(
    "path",
    ["/r/BAD/name", "/r/team/app/-/manifest/not a tag!", "/r/team/app/-/manifest/sha256:abc",
     "/r/team/app/-/unknown/1.0", "/r/team/app/-/manifest/nope", "/r/" + "a/" * 200 + "b"],
)  # fmt: skip
def test_bad_paths_are_error_pages_never_500(open_registry: Filled, path: str) -> None:
    with client(open_registry.registry) as browser:
        page = browser.get(path)
    assert 400 <= page.status_code < 500
    assert page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers


def test_deletes_need_this_sessions_csrf_token_and_a_same_origin_form(open_registry: Filled) -> None:
    registry = open_registry.registry
    with httpx.Client(base_url=registry.url, timeout=30) as api:
        push_content(api, "scratch/csrf", "target", random_image(1, 1024))
    with client(registry) as browser:
        confirmation = browser.get("/r/scratch/csrf/-/delete/target")
        token = csrf_of(confirmation)
        assert "dockyard_session" in browser.cookies
        no_token = browser.post("/r/scratch/csrf/-/delete/target", data={})
        assert no_token.status_code == 403
        wrong = browser.post("/r/scratch/csrf/-/delete/target", data={"csrf": "0" * 64})
        assert wrong.status_code == 403
        elsewhere = browser.post(
            "/r/scratch/csrf/-/delete/target",
            data={"csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        with client(registry) as other_session:
            other_session.get("/r/scratch/csrf/-/delete/target")
            stolen = other_session.post("/r/scratch/csrf/-/delete/target", data={"csrf": token})
            assert stolen.status_code == 403
        assert httpx.get(f"{registry.url}/v2/scratch/csrf/manifests/target").status_code == 200
        done = browser.post("/r/scratch/csrf/-/delete/target", data={"csrf": token})
        assert done.status_code == 303
    assert httpx.get(f"{registry.url}/v2/scratch/csrf/manifests/target").status_code == 404


def test_a_forged_or_foreign_cookie_is_an_anonymous_visitor(htpasswd_ui_registry: RunningRegistry) -> None:
    registry = htpasswd_ui_registry
    with client(registry) as browser:
        login = browser.get("/login")
        signed_in = browser.post(
            "/login",
            data={"csrf": csrf_of(login), "username": "alice", "password": PASSWORDS["alice"]},
        )
        assert signed_in.status_code == 303
        sealed = browser.cookies["dockyard_session"]
        assert "alice" in browser.get("/").text
    forged = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    for value in (forged, "x" * 5000, "not base64 !", ""):
        with client(registry) as stranger:
            stranger.cookies.set("dockyard_session", value)
            page = stranger.get("/")
            assert page.status_code == 200
            assert "Signed in as" not in page.text
    with client(registry) as replayed:  # the same cookie on another connection still holds
        replayed.cookies.set("dockyard_session", sealed)
        assert "Signed in as <strong>alice</strong>" in replayed.get("/").text


def test_cookie_is_secure_behind_tls(htpasswd_ui_registry: RunningRegistry) -> None:
    # nginx on the same machine says the client spoke TLS (the shipped sites do).
    with client(htpasswd_ui_registry, **{"X-Forwarded-Proto": "https"}) as browser:
        login = browser.get("/login")
    cookie = login.headers["set-cookie"]
    assert "; secure" in cookie.lower()
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()


def test_basic_credentials_of_the_request_are_honoured(htpasswd_ui_registry: RunningRegistry) -> None:
    with client(htpasswd_ui_registry) as browser:
        page = browser.get("/", auth=("alice", PASSWORDS["alice"]))
        assert "alice/app" in page.text
        wrong = browser.get("/", auth=("alice", "wrong"))
        assert wrong.status_code == 200
        assert "alice/app" not in wrong.text


def test_a_changed_password_ends_the_session(start_registry: StartRegistry, tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"carol": "first-password"})
    registry = start_registry({"auth": {"htpasswd": {"realm": "Dockyard", "path": str(htpasswd)}}})
    with client(registry) as browser:
        login = browser.get("/login")
        browser.post(
            "/login", data={"csrf": csrf_of(login), "username": "carol", "password": "first-password"}
        )
        assert "Signed in as <strong>carol</strong>" in browser.get("/").text
        write_htpasswd(htpasswd, {"carol": "second-password"})
        time.sleep(1.5)  # the registry looks at the file at most once a second
        after = browser.get("/")
        assert "Signed in as" not in after.text
        assert "dockyard_session=" in after.headers["set-cookie"]  # replaced, not checked again


def test_sessions_expire() -> None:
    sealer = Sealer("a secret")
    session = new_session("dave", "Basic ZGF2ZTpwdw==")
    assert sealer.open(sealer.seal(session)) == session
    assert sealer.open(sealer.seal(replace(session, expires=time.time() - 1))) is None
    assert Sealer("another secret").open(sealer.seal(session)) is None
    assert "ZGF2ZTpwdw" not in sealer.seal(session)  # the credential is sealed, not only signed


def test_pull_lines_name_the_configured_host(start_registry: StartRegistry) -> None:
    registry = start_registry({"http": {"host": "https://registry.example.com"}})
    with httpx.Client(base_url=registry.url, timeout=30) as api:
        push_content(api, "team/named", "1.0", random_image(1, 1024))
    with client(registry) as browser:
        page = browser.get("/r/team/named")
    assert 'data-copy="docker pull registry.example.com/team/named:1.0"' in page.text
    assert registry.host not in page.text
