"""htpasswd users and the Basic-auth controller: parsing, reload, constant work, caching."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import anyio
import bcrypt
import pytest

from auth import AuthConfigError, Challenge, create_access_controller
from auth.base import Access
from auth.htpasswd import HtpasswdAccessController, HtpasswdUsers, parse_htpasswd
from auth.htpasswd_edit import remove_user, set_password

from .helpers import challenge_params, write_htpasswd

PULL = Access("repository", "team/app", "pull")


def basic_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every hash bcrypt.checkpw is asked to check, in order."""
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)  # the module auth.htpasswd calls
    return calls


def load(path: Path) -> HtpasswdUsers:
    problems: list[str] = []
    users = HtpasswdUsers.load(path, problems, "auth.htpasswd.path")
    assert problems == []
    assert users is not None
    return users


def controller(path: Path, realm: str = "Registry Realm") -> HtpasswdAccessController:
    built = create_access_controller({"htpasswd": {"realm": realm, "path": str(path)}})
    assert isinstance(built, HtpasswdAccessController)
    return built


def force_recheck(users: HtpasswdUsers) -> None:
    users._next_stat = 0.0  # the next call looks at the file again instead of in a second


def test_parse_accepts_bcrypt_variants_and_skips_comments() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    text = f"# users\n\nalice:{hashed}\nbob:{hashed.replace('$2b$', '$2y$')}\n"
    hashes, problems = parse_htpasswd(text, "f")
    assert problems == []
    assert set(hashes) == {"alice", "bob"}


@pytest.mark.parametrize(
    "line",
    [
        "carol:$apr1$salt$0123456789abcdefghijkl",  # Apache MD5
        "carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        "carol:plaintext",
        "carol:abJnggxhB/yWI",  # crypt(3)
        "no-separator-line",
    ],
)
def test_non_bcrypt_entries_stop_start_up_with_the_line_and_user(tmp_path: Path, line: str) -> None:
    path = tmp_path / "htpasswd"
    good = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    path.write_text(f"alice:{good}\n{line}\n")
    with pytest.raises(AuthConfigError) as raised:
        create_access_controller({"htpasswd": {"realm": "r", "path": str(path)}})
    [problem] = raised.value.problems
    assert "line 2" in problem
    secret_part = line.partition(":")[2]
    assert not secret_part or secret_part not in problem  # the hash itself is never echoed


def test_missing_settings_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError) as raised:
        create_access_controller({"htpasswd": {"path": str(tmp_path / "absent"), "extra": 1}})
    text = "\n".join(raised.value.problems)
    assert "auth.htpasswd.realm: required" in text
    assert "cannot read" in text
    assert "absent" in text
    assert "auth.htpasswd.extra: unknown key" in text


async def test_known_user_with_right_password_is_granted(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    grant = await controller(path).authorize(basic_header("alice", "wonderland"), [PULL])
    assert grant.account == "alice"
    assert grant.accesses == {PULL}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic_header("alice", "wrong"),
        basic_header("mallory", "wonderland"),
        {"authorization": "Basic !!!notbase64"},
        {"authorization": "Bearer abc.def.ghi"},
    ],
    ids=["none", "wrong-password", "unknown-user", "malformed", "other-scheme"],
)
async def test_anything_else_is_challenged_with_basic_realm(tmp_path: Path, headers: dict[str, str]) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    with pytest.raises(Challenge) as raised:
        await controller(path, realm='My "Registry"').authorize(headers, [PULL])
    assert raised.value.www_authenticate == 'Basic realm="My \\"Registry\\""'
    assert "wonderland" not in repr(raised.value.detail)


async def test_base_endpoint_needs_credentials_too(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    with pytest.raises(Challenge):
        await controller(path).authorize({}, [])
    grant = await controller(path).authorize(basic_header("alice", "wonderland"), [])
    assert grant.account == "alice"


async def test_unknown_user_and_wrong_password_each_cost_exactly_one_bcrypt(
    tmp_path: Path, checkpw_calls: list[bytes]
) -> None:
    users = load(write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"}, cost=5))
    assert not await users.verify("alice", "wrong")
    assert len(checkpw_calls) == 1
    assert not await users.verify("nobody", "wrong")
    assert len(checkpw_calls) == 2
    real_hash, dummy_hash = checkpw_calls
    assert real_hash != dummy_hash
    assert dummy_hash[:7] == real_hash[:7] == b"$2b$05$"  # same algorithm and cost: same work


async def test_success_is_cached_and_the_cache_follows_the_file(
    tmp_path: Path, checkpw_calls: list[bytes]
) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    users = load(path)
    for _ in range(5):
        assert await users.verify("alice", "wonderland")
    assert len(checkpw_calls) == 1
    assert not await users.verify("alice", "wonderland2")  # a different password is never cached
    assert len(checkpw_calls) == 2

    set_password(path, "alice", "through-the-looking-glass", cost=4)
    force_recheck(users)
    assert not await users.verify("alice", "wonderland")  # old password: cache entry is stale
    assert await users.verify("alice", "through-the-looking-glass")


async def test_concurrent_checks_of_the_same_credentials_share_one_bcrypt(
    tmp_path: Path, checkpw_calls: list[bytes]
) -> None:
    users = load(write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"}, cost=8))
    results: list[bool] = []

    async def check() -> None:
        results.append(await users.verify("alice", "wonderland"))

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(check)
    assert results == [True] * 6
    assert len(checkpw_calls) == 1


async def test_users_added_and_removed_without_restart(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    users = load(path)
    assert not await users.verify("bob", "builder")

    users._next_stat = time.monotonic() + 3600
    set_password(path, "bob", "builder", cost=4)
    assert not await users.verify("bob", "builder")  # the file is not looked at before it is due
    force_recheck(users)
    assert await users.verify("bob", "builder")

    assert remove_user(path, "alice")
    force_recheck(users)
    assert not await users.verify("alice", "wonderland")
    assert await users.verify("bob", "builder")


async def test_same_size_same_second_rewrite_is_still_noticed(tmp_path: Path) -> None:
    """Replacing the file changes its inode even if size and mtime happen to match."""
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    users = load(path)
    stat = path.stat()
    replacement = tmp_path / "new"
    write_htpasswd(replacement, {"alice": "wonderlanx"})
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    force_recheck(users)
    assert await users.verify("alice", "wonderlanx")


async def test_bad_lines_on_reload_are_skipped_and_a_vanished_file_locks_everyone_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    users = load(path)
    hashed = path.read_text().strip()
    path.write_text(f"{hashed}\nbob:$apr1$x$yyyyyyyyyyyyyyyyyyyyyy\n")
    force_recheck(users)
    assert await users.verify("alice", "wonderland")
    assert "user 'bob'" in caplog.text
    assert "$apr1$" not in caplog.text

    path.unlink()
    force_recheck(users)
    assert not await users.verify("alice", "wonderland")


async def test_passwords_longer_than_72_bytes_match_on_their_first_72(tmp_path: Path) -> None:
    """What Apache's htpasswd and Distribution do with bcrypt's 72-byte limit."""
    path = tmp_path / "htpasswd"
    long_password = "x" * 72
    set_password(path, "alice", long_password, cost=4)
    users = load(path)
    assert await users.verify("alice", long_password + "ignored-tail")
    assert not await users.verify("alice", "x" * 71)


def test_set_password_refuses_colons_and_keeps_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    with pytest.raises(ValueError, match="no ':'"):
        set_password(path, "a:b", "pw")
    set_password(path, "alice", "pw", cost=4)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("alice:$2b$04$")


def test_challenge_header_parses(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    scheme, params = challenge_params(controller(path, realm="Dockyard").www_authenticate)
    assert (scheme, params) == ("Basic", {"realm": "Dockyard"})
