"""The ``proxy`` section: Distribution's single-upstream form and the registry's prefix form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from registry.config import ConfigError, Upstream, load_config


def load(tmp_path: Path, proxy: Any, environ: dict[str, str] | None = None) -> tuple[Upstream, ...]:
    document = {"version": "0.1", "storage": {"inmemory": {}}, "proxy": proxy}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))
    return load_config(path, environ or {}).proxy


def problems(tmp_path: Path, proxy: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, proxy)
    return raised.value.problems


def test_distributions_form_mirrors_one_upstream_for_the_whole_registry(tmp_path: Path) -> None:
    (upstream,) = load(
        tmp_path,
        {
            "remoteurl": "https://registry-1.docker.io/",
            "username": "someone",
            "password": "0123",
            "ttl": "72h",
        },
    )
    assert upstream.prefix == ""
    assert upstream.remote_url == "https://registry-1.docker.io"
    assert (upstream.username, upstream.password) == ("someone", "0123")
    assert upstream.ttl == 72 * 3600
    assert upstream.revalidate == 60
    assert "0123" not in repr(upstream)


def test_the_prefix_form_mirrors_several_upstreams(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until the registry starts")
    upstreams = load(
        tmp_path,
        {
            "upstreams": [
                {"prefix": "dockerhub", "remoteurl": "https://registry-1.docker.io", "ttl": "0"},
                {"prefix": "ghcr", "remoteurl": "https://ghcr.io", "revalidate": "10s", "cacerts": str(ca)},
            ]
        },
    )
    assert [(u.prefix, u.remote_url, u.ttl, u.revalidate) for u in upstreams] == [
        ("dockerhub", "https://registry-1.docker.io", 0, 60),
        ("ghcr", "https://ghcr.io", 168 * 3600, 10),
    ]
    assert upstreams[1].cacerts == ca


def test_environment_overrides_reach_the_single_form(tmp_path: Path) -> None:
    (upstream,) = load(
        tmp_path,
        {"remoteurl": "https://a.example", "username": "bot"},
        {"REGISTRY_PROXY_PASSWORD": "from-the-environment"},
    )
    assert upstream.password == "from-the-environment"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "upstreams": [
                {"prefix": "hub", "remoteurl": "https://a.example"},
                {"prefix": "hub/nested", "remoteurl": "https://b.example"},
                {"prefix": "Bad Prefix", "remoteurl": "https://c.example"},
                {"prefix": "creds", "remoteurl": "https://user:secret@d.example"},
                {"prefix": "noscheme", "remoteurl": "registry.example"},
                {"prefix": "half", "remoteurl": "https://e.example", "username": "only"},
                {"prefix": "typo", "remoteurl": "https://f.example", "remoteURL": "x"},
                {"remoteurl": "https://g.example"},
            ]
        },
    )
    assert found == [
        "proxy.upstreams[1].prefix: 'hub/nested' overlaps the prefix 'hub'",
        "proxy.upstreams[2].prefix: 'Bad Prefix' is not a repository name such as dockerhub",
        "proxy.upstreams[3].remoteurl: must not hold credentials (use username and password)",
        "proxy.upstreams[4].remoteurl: must be a URL such as https://registry.example.com",
        "proxy.upstreams[5].password: username and password go together",
        "proxy.upstreams[6].remoteURL: unknown key (known: cacerts, password, prefix, remoteurl, "
        "revalidate, ttl, username)",
        "proxy.upstreams[7].prefix: required",
    ]
    assert not any("secret" in problem for problem in found)


def test_both_forms_at_once_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, {"remoteurl": "https://a.example", "upstreams": []}) == [
        "proxy.upstreams: give either remoteurl (one upstream) or upstreams, not both"
    ]
