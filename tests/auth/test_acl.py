"""ACL rules: first match wins, default deny, ${account} namespaces, groups, anonymous access."""

from __future__ import annotations

from typing import Any

import pytest

from auth.acl import Acl, read_rules
from auth.scope import ResourceActions

GROUPS = {"ci": frozenset({"builder"}), "admins": frozenset({"root"})}
RULES: list[dict[str, Any]] = [
    {"group": "admins", "repository": "*", "actions": ["*"]},
    {"account": "mallory", "repository": "*", "actions": ["pull"]},  # before the namespace rule
    {"account": "*", "repository": "${account}/*", "actions": ["pull", "push", "delete"]},
    {"group": "ci", "repository": "apps/*", "actions": ["pull", "push"]},
    {"anonymous": True, "repository": "public/*", "actions": ["pull"]},
    {"account": "*", "repository": "public/*", "actions": ["pull", "push"]},
    {"everyone": True, "repository": "library/?ase", "actions": ["pull"]},
    {"account": ["alice", "bob"], "registry": "catalog", "actions": ["*"]},
]


@pytest.fixture(scope="module")
def acl() -> Acl:
    problems: list[str] = []
    parsed = read_rules(RULES, GROUPS, problems)
    assert problems == []
    return parsed


@pytest.mark.parametrize(
    ("account", "name", "allowed"),
    [
        ("alice", "alice/app", {"pull", "push", "delete"}),
        ("alice", "alice/deep/path/app", {"pull", "push", "delete"}),
        ("alice", "bob/app", set()),  # another user's namespace
        ("alice", "alice", set()),  # the namespace itself is not a repository under it
        ("alice", "aliceX/app", set()),
        ("mallory", "mallory/app", {"pull"}),  # the earlier rule decides: first match wins
        ("builder", "apps/web", {"pull", "push"}),
        ("builder", "apps", set()),
        ("root", "anything/at/all", {"*"}),
        (None, "public/tool", {"pull"}),
        ("alice", "public/tool", {"pull", "push"}),
        (None, "library/base", {"pull"}),
        ("alice", "library/case", {"pull"}),
        (None, "library/bases", set()),
        (None, "alice/app", set()),  # anonymous owns no namespace
        (None, "private/app", set()),  # default deny
    ],
)
def test_first_matching_rule_decides(acl: Acl, account: str | None, name: str, allowed: set[str]) -> None:
    assert acl.allowed(account, "repository", name) == allowed


@pytest.mark.parametrize("account", [None, "alice", "mallory", "builder", "root", "bob", "bob/x"])
def test_one_accounts_decisions_are_the_rules_decisions(acl: Acl, account: str | None) -> None:
    """``permits_for`` (what the web interface filters thousands of names with) answers as
    ``permits`` does, for every resource and action."""
    permits = acl.permits_for(account)
    resources = [("repository", name) for name in (
        "alice/app", "bob/app", "bob/x/app", "mallory/app", "apps/web", "apps", "public/tool",
        "library/base", "library/bases", "private/app", "anything/at/all",
    )] + [("registry", "catalog"), ("registry", "other")]  # fmt: skip
    decisions = [
        (kind, name, action, permits(kind, name, action))
        for kind, name in resources
        for action in ("pull", "push", "delete", "*")
    ]
    assert decisions == [
        (kind, name, action, acl.permits(account, kind, name, action))
        for kind, name in resources
        for action in ("pull", "push", "delete", "*")
    ]
    assert {allowed for *_, allowed in decisions} == {True, False}  # the table decides both ways


def test_account_placeholder_only_takes_plain_names() -> None:
    """An account that is not one path component owns nothing: "bob/x" cannot claim bob/x/*."""
    acl = read_rules([{"account": "*", "repository": "${account}/*", "actions": ["push"]}], {}, [])
    assert acl.allowed("bob", "repository", "bob/x/app") == {"push"}
    assert acl.allowed("bob/x", "repository", "bob/x/app") == frozenset()
    assert acl.allowed("Bob", "repository", "Bob/app") == frozenset()
    assert acl.allowed("a*", "repository", "ab/app") == frozenset()


def test_grant_is_the_intersection_of_requested_and_allowed(acl: Acl) -> None:
    requested = [
        ResourceActions("repository", "public/tool", ("pull", "push")),
        ResourceActions("repository", "private/app", ("pull",)),
        ResourceActions("repository", "alice/app", ("pull", "push", "*")),
        ResourceActions("registry", "catalog", ("*",)),
    ]
    assert acl.grant(None, requested) == [ResourceActions("repository", "public/tool", ("pull",))]
    assert acl.grant("alice", requested) == [
        ResourceActions("repository", "public/tool", ("pull", "push")),
        ResourceActions("repository", "alice/app", ("pull", "push")),  # "*" asked, not granted
        ResourceActions("registry", "catalog", ("*",)),
    ]
    assert acl.grant("root", requested[2:3]) == [
        ResourceActions("repository", "alice/app", ("pull", "push", "*"))
    ]


def test_registry_rules_never_match_repositories(acl: Acl) -> None:
    assert acl.allowed("alice", "repository", "catalog") == frozenset()
    assert acl.allowed("carol", "registry", "catalog") == frozenset()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"repository": "*", "actions": ["pull"]}, "exactly one of account, group, anonymous, everyone"),
        ({"account": "a", "group": "ci", "repository": "*", "actions": ["pull"]}, "exactly one of account"),
        ({"account": "a", "actions": ["pull"]}, "exactly one of repository, registry"),
        ({"account": "a", "repository": "*", "actions": ["write"]}, "'write' is not one of"),
        ({"account": "a", "repository": "*"}, "actions: required"),
        ({"group": "nobody", "repository": "*", "actions": ["pull"]}, "no group 'nobody'"),
        ({"anonymous": False, "repository": "*", "actions": ["pull"]}, "anonymous: true"),
        ({"account": "a", "repository": "*", "actions": ["pull"], "match": {}}, "unknown key"),
        ({"account": "a", "registry": "${account}", "actions": ["*"]}, "only fits repository"),
    ],
)
def test_malformed_rules_are_reported_with_their_index(rule: dict[str, Any], message: str) -> None:
    problems: list[str] = []
    acl = read_rules([{"account": "ok", "repository": "*", "actions": ["pull"]}, rule], GROUPS, problems)
    assert problems, rule
    assert all(problem.startswith("tokenserver.acl[1]") for problem in problems)
    assert any(message in problem for problem in problems), problems
    assert len(acl.rules) == 1
