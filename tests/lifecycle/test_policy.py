"""Retention rules on their own: what a repository glob covers, what a tag pattern matches, and
which rule a repository follows."""

from __future__ import annotations

import pytest

from registry.lifecycle.policy import Keep, RetentionRule, repository_glob, rule_for, tag_glob


@pytest.mark.parametrize(
    ("pattern", "covered", "not_covered"),
    [
        ("ci/**", ["ci/app", "ci/a/b/c"], ["ci", "cix/app", "team/ci/app"]),
        ("**/cache", ["cache", "a/cache", "a/b/cache"], ["cache/x", "a/cachex", "xcache"]),
        ("team/*", ["team/app", "team/a.b-c_d"], ["team", "team/a/b", "other/app"]),
        ("team/*/db", ["team/x/db"], ["team/db", "team/x/y/db"]),
        ("a/**/z", ["a/z", "a/b/z", "a/b/c/z"], ["a/zz", "b/a/z"]),
        ("app-?", ["app-1"], ["app-12", "app-/"]),
        ("**", ["x", "x/y/z"], []),
        ("exact/name", ["exact/name"], ["exact/name2", "exact"]),
    ],
)
def test_repository_globs(pattern: str, covered: list[str], not_covered: list[str]) -> None:
    glob = repository_glob(pattern)
    assert [name for name in covered if not glob.fullmatch(name)] == []
    assert [name for name in not_covered if glob.fullmatch(name)] == []


@pytest.mark.parametrize("pattern", ["", "/a", "a/", "a//b", "a**", "**b/c", "A/b", "a b", "a/[bc]", "a/b\\"])
def test_bad_repository_globs(pattern: str) -> None:
    with pytest.raises(ValueError, match="not a repository glob"):
        repository_glob(pattern)


def test_tag_patterns() -> None:
    assert tag_glob("v*").fullmatch("v1.2.3")
    assert tag_glob("v*").fullmatch("v")
    assert not tag_glob("v*").fullmatch("latest-v1")
    assert tag_glob("sha256-*").fullmatch("sha256-" + "a" * 64 + ".sig")
    assert tag_glob("rc?").fullmatch("rc1")
    assert not tag_glob("rc?").fullmatch("rc10")
    assert tag_glob("a.b").fullmatch("a.b")
    assert not tag_glob("a.b").fullmatch("axb")
    for bad in ("", "v/1", "v 1", "v[1]", "x" * 129):
        with pytest.raises(ValueError, match="not a tag pattern"):
            tag_glob(bad)


def test_the_first_covering_rule_wins() -> None:
    special = RetentionRule(("ci/special",), Keep(newest=100))
    every = RetentionRule(("ci/**",), Keep(newest=1))
    rules = (special, every)
    assert rule_for(rules, "ci/special") == (1, special)
    assert rule_for(rules, "ci/other") == (2, every)
    assert rule_for(rules, "team/app") is None
    assert Keep(tags=("v*", "latest")).keeps_tag("latest")
    assert not Keep(tags=("v*",)).keeps_tag("latest")
