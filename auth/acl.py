"""Who may do what, as an ordered list of rules: the first rule that matches a resource decides.

Each rule names one kind of subject and one resource pattern::

    - account: alice            # or a list of accounts, or "*" for any signed-in user
      repository: "*"
      actions: ["*"]
    - group: ci                 # members listed under `groups`
      repository: "apps/*"
      actions: [pull, push]
    - account: "*"
      repository: "${account}/*"   # every user owns their own namespace
      actions: [pull, push, delete]
    - anonymous: true           # requests without credentials
      repository: "public/*"
      actions: [pull]
    - everyone: true            # signed in or not
      repository: "library/*"
      actions: [pull]
    - account: admin
      registry: catalog         # the registry:catalog:* scope (listing repositories)
      actions: ["*"]

In patterns ``*`` matches any run of characters, ``/`` included, and ``?`` one character.
A resource no rule matches gets nothing (default deny).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .scope import ResourceActions
from .section import Section

ACTIONS = ("pull", "push", "delete", "*")
ACCOUNT_PLACEHOLDER = "${account}"
_OWNED_NAMESPACE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
"""Accounts that can own ``<account>/*``: exactly one repository path component."""
_RULE_KEYS = ("account", "group", "anonymous", "everyone", "repository", "registry", "actions")


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Rule:
    accounts: frozenset[str] = frozenset()
    any_account: bool = False
    groups: frozenset[str] = frozenset()
    anonymous: bool = False
    everyone: bool = False
    resource_type: str = "repository"
    pattern: str = ""
    actions: frozenset[str] = frozenset()

    def matches_subject(self, account: str | None, member_of: frozenset[str]) -> bool:
        if self.everyone:
            return True
        if account is None:
            return self.anonymous
        return self.any_account or account in self.accounts or bool(self.groups & member_of)

    def matches_resource(self, account: str | None, resource_type: str, name: str) -> bool:
        if resource_type != self.resource_type:
            return False
        pattern = self.pattern
        if ACCOUNT_PLACEHOLDER in pattern:
            # Only a plain name is substituted: it holds no glob character and no "/", so
            # account "bob/x" can never claim a namespace inside bob's.
            if account is None or not _OWNED_NAMESPACE.match(account):
                return False
            pattern = pattern.replace(ACCOUNT_PLACEHOLDER, account)
        return _glob(pattern).fullmatch(name) is not None


class Acl:
    def __init__(self, rules: Sequence[Rule], groups: Mapping[str, frozenset[str]]) -> None:
        self.rules = list(rules)
        self.groups = dict(groups)

    def member_of(self, account: str | None) -> frozenset[str]:
        if account is None:
            return frozenset()
        return frozenset(group for group, members in self.groups.items() if account in members)

    def allowed(self, account: str | None, resource_type: str, name: str) -> frozenset[str]:
        """The actions the first matching rule gives, or none."""
        member_of = self.member_of(account)
        for rule in self.rules:
            if rule.matches_subject(account, member_of) and rule.matches_resource(
                account, resource_type, name
            ):
                return rule.actions
        return frozenset()

    def permits(self, account: str | None, resource_type: str, name: str, action: str) -> bool:
        allowed = self.allowed(account, resource_type, name)
        return "*" in allowed or action in allowed

    def permits_for(self, account: str | None) -> Callable[[str, str, str], bool]:
        """``permits`` for one account (type, name, action), with the rules about that account
        picked once: for deciding thousands of names."""
        member_of = self.member_of(account)
        rules = [rule for rule in self.rules if rule.matches_subject(account, member_of)]

        def permits(resource_type: str, name: str, action: str) -> bool:
            for rule in rules:
                if rule.matches_resource(account, resource_type, name):
                    return "*" in rule.actions or action in rule.actions
            return False

        return permits

    def grant(self, account: str | None, requested: Sequence[ResourceActions]) -> list[ResourceActions]:
        """The intersection of requested and allowed actions, per resource; empty ones left out."""
        granted: list[ResourceActions] = []
        for resource in requested:
            allowed = self.allowed(account, resource.type, resource.name)
            actions = tuple(a for a in resource.actions if "*" in allowed or a in allowed)
            if actions:
                granted.append(ResourceActions(resource.type, resource.name, actions))
        return granted


def read_groups(section: Section) -> dict[str, frozenset[str]]:
    groups: dict[str, frozenset[str]] = {}
    for name in section.values:
        members = section.string_list(name)
        groups[str(name)] = frozenset(members)
    return groups


def read_rules(value: object, groups: Mapping[str, frozenset[str]], problems: list[str]) -> Acl:
    """The ``acl`` list; every malformed rule is a problem."""
    if value is None:
        value = []
    if not isinstance(value, list):
        problems.append("tokenserver.acl: must be a list of rules")
        value = []
    rules = []
    for index, raw in enumerate(value):
        rule = _read_rule(Section(f"tokenserver.acl[{index}]", raw, problems), groups)
        if rule is not None:
            rules.append(rule)
    return Acl(rules, groups)


def _read_rule(section: Section, groups: Mapping[str, frozenset[str]]) -> Rule | None:
    before = len(section.problems)
    section.reject_unknown(_RULE_KEYS)
    subjects = [key for key in ("account", "group", "anonymous", "everyone") if key in section]
    if len(subjects) != 1:
        section.problems.append(f"{section.name}: name exactly one of account, group, anonymous, everyone")
    accounts = frozenset(section.string_list("account"))
    group_names = frozenset(section.string_list("group"))
    for group in sorted(group_names - set(groups)):
        section.problem("group", f"no group {group!r} under tokenserver.groups")
    anonymous = section.flag("anonymous") if "anonymous" in section else False
    everyone = section.flag("everyone") if "everyone" in section else False
    if "anonymous" in section and not anonymous:
        section.problem("anonymous", "write `anonymous: true` or leave the key out")
    if "everyone" in section and not everyone:
        section.problem("everyone", "write `everyone: true` or leave the key out")
    resources = [key for key in ("repository", "registry") if key in section]
    if len(resources) != 1:
        section.problems.append(f"{section.name}: name exactly one of repository, registry")
    resource_type = resources[0] if resources else "repository"
    pattern = section.string(resource_type, required=True)
    if resource_type == "registry" and ACCOUNT_PLACEHOLDER in pattern:
        section.problem("registry", f"{ACCOUNT_PLACEHOLDER} only fits repository patterns")
    actions = section.string_list("actions")
    if not actions:
        section.problem("actions", f"required: a list of {', '.join(ACTIONS)}")
    for action in actions:
        if action not in ACTIONS:
            section.problem("actions", f"{action!r} is not one of {', '.join(ACTIONS)}")
    if len(section.problems) > before:
        return None
    return Rule(
        accounts=accounts - {"*"},
        any_account="*" in accounts,
        groups=group_names,
        anonymous=anonymous,
        everyone=everyone,
        resource_type=resource_type,
        pattern=pattern,
        actions=frozenset(actions),
    )
