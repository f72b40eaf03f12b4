"""The scope grammar of spec-auth-scope and the challenge's scope parameter."""

from __future__ import annotations

import pytest

from auth.base import Access
from auth.scope import ResourceActions, ScopeError, group_accesses, parse_scope, parse_scopes, scope_string


def test_plain_repository_scope() -> None:
    assert parse_scope("repository:samalba/my-app:pull,push") == ResourceActions(
        "repository", "samalba/my-app", ("pull", "push")
    )


def test_name_with_a_registry_port_keeps_its_colon() -> None:
    parsed = parse_scope("repository:localhost:5000/team/app:pull")
    assert parsed == ResourceActions("repository", "localhost:5000/team/app", ("pull",))


def test_deprecated_resource_class_is_dropped() -> None:
    assert parse_scope("repository(plugin):vieux/sshfs:pull").type == "repository"


def test_catalog_scope() -> None:
    assert parse_scope("registry:catalog:*") == ResourceActions("registry", "catalog", ("*",))


@pytest.mark.parametrize(
    "text",
    [
        "repository:Team/App:pull",  # upper case is not a repository name
        "repository:team/../app:pull",
        "repository:team/app",  # no actions
        "repository::pull",
        "REPOSITORY:team/app:pull",
        "repository:team/app:pull;rm",
        "repository:" + "a" * 256 + ":pull",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_scopes_merge_per_resource_across_params_and_spaces() -> None:
    parsed = parse_scopes(["repository:a:pull repository:b:push", "repository:a:push,pull"])
    assert parsed == [
        ResourceActions("repository", "a", ("pull", "push")),
        ResourceActions("repository", "b", ("push",)),
    ]


def test_too_many_resources_are_refused() -> None:
    with pytest.raises(ScopeError):
        parse_scopes([" ".join(f"repository:r{i}:pull" for i in range(65))])


def test_challenge_scope_is_one_entry_per_resource_with_actions_joined() -> None:
    required = [
        Access("repository", "team/app", "pull"),
        Access("repository", "team/app", "push"),
        Access("repository", "team/base", "pull"),
    ]
    assert scope_string(group_accesses(required)) == "repository:team/app:pull,push repository:team/base:pull"
