"""The commands operators run: generate-token-key, htpasswd, token-server (start-up checks)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml

from auth.cli import main
from auth.keygen import GeneratedKey
from auth.keys import libtrust_key_id
from auth.tokenissuer import load_signer

from .helpers import write_htpasswd
from .servers import token_server_section


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auth", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_generate_token_key_writes_a_usable_pair_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["generate-token-key", str(tmp_path / "keys")])
    problems: list[str] = []
    signer = load_signer(tmp_path / "keys" / "token.key", tmp_path / "keys" / "token.crt", problems, "t")
    assert problems == []
    assert signer is not None
    assert f"key id:      {libtrust_key_id(signer.public_key)}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["generate-token-key", str(tmp_path / "keys")])
    assert exited.value.code == 1
    assert "--force" in capsys.readouterr().err


def test_htpasswd_adds_changes_and_removes_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "htpasswd"
    for user, password in (("alice", "first"), ("bob", "second"), ("alice", "third")):
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n"))
        main(["htpasswd", str(path), user, "--password-stdin"])
    entries = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert set(entries) == {"alice", "bob"}
    assert bcrypt.checkpw(b"third", entries["alice"].encode())
    main(["htpasswd", str(path), "bob", "--delete"])
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == ["alice"]
    with pytest.raises(SystemExit) as exited:
        main(["htpasswd", str(path), "bob", "--delete"])
    assert exited.value.code == 1
    assert "not in" in capsys.readouterr().err


def test_token_server_refuses_to_start_with_every_problem_listed(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump({"tokenserver": {"htpasswd": str(tmp_path / "none"), "expiration": "1s"}})
    )
    result = run("token-server", str(config))
    assert result.returncode == 2
    for expected in (
        "tokenserver.issuer: required",
        "tokenserver.signingkey: required",
        "none: no such file",
    ):
        assert expected in result.stderr
    config.write_text(yaml.safe_dump({"version": 0.1}))
    assert "no tokenserver section" in run("token-server", str(config)).stderr


@pytest.mark.parametrize("addr", ["nonsense", "127.0.0.1:99999", "127.0.0.1:", "[::1]", "a_b:80"])
def test_token_server_refuses_a_bad_addr_as_the_registry_does(
    tmp_path: Path, es256_key: GeneratedKey, addr: str
) -> None:
    config = tmp_path / "config.yml"
    section = token_server_section(es256_key, write_htpasswd(tmp_path / "htpasswd", {"alice": "pw"}))
    config.write_text(yaml.safe_dump({"tokenserver": section}))
    result = run("token-server", str(config), "--addr", addr)
    assert result.returncode == 2
    assert f"{addr!r} is not HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
