"""Retention rules through ``dockyard garbage-collect --retention`` on a serving registry's root:
first matching rule wins, each keep clause, the push-time fallback for tags without a record, the
exact dry run, the real run with ``--delete-untagged``, read-only mode and config problems."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry.config import ConfigError, load_config
from tests.integrity.layout import check_layout
from tests.lifecycle.commands import age_tag, dockyard, garbage_collect, push, stored_files
from tests.support.images import Image, random_image
from tests.support.registry import StartRegistry
from tests.support.served import Served

REPOSITORIES = "docker/registry/v2/repositories"
RULES: list[dict[str, Any]] = [
    {"repositories": ["ci/keep-recent"], "keep": {"pushedwithin": "720h"}},
    {"repositories": ["ci/**"], "keep": {"newest": 2, "tags": ["v*"]}},
    {"repositories": ["team/*", "**/cache"], "keep": {"pulledwithin": "1h"}},
]
CONFIG = {"storage": {"maintenance": {"retention": RULES, "pullrecords": {"flushinterval": "1s"}}}}
DAYS = 24 * 3600


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.2)


def test_rules_untag_what_no_clause_keeps(start_registry: StartRegistry) -> None:
    registry = start_registry(CONFIG)
    root = registry.root
    images: dict[tuple[str, str], Image] = {}
    with Served(registry.url) as served:
        for repository, tags in (
            ("ci/app", ["v1", "a1", "a2", "a3", "a4"]),
            ("ci/keep-recent", ["fresh", "stale"]),
            ("team/svc", ["pulled", "idle"]),
            ("team/svc/cache", ["idle"]),
            ("other/app", ["old"]),
        ):
            for tag in tags:
                images[(repository, tag)] = image = random_image(layers=1, layer_size=1024)
                push(served, repository, tag, image)
        for index, tag in enumerate(["v1", "a1", "a2", "a3"]):  # oldest first, a4 newest
            age_tag(root, "ci/app", tag, (10 - index) * DAYS)
        age_tag(root, "ci/app", "a4", 30 * DAYS)
        age_tag(root, "ci/keep-recent", "stale", 40 * DAYS)
        age_tag(root, "other/app", "old", 400 * DAYS)
        for repository in ("team/svc", "team/svc/cache"):  # pushed long ago, never pulled
            age_tag(root, repository, "idle", DAYS)
        assert served.status("GET", "/v2/team/svc/manifests/pulled") == 200
        _wait_for(root / REPOSITORIES / "team/svc/_dockyard/tags/pulled/pulled")
        before = stored_files(root)

        dry = garbage_collect(registry.config_path, "--retention", "--dry-run", "--grace-period", "0s")
        assert stored_files(root) == before
        assert dry.stdout.splitlines() == [
            "ci/app: tag eligible for deletion: a1 (retention rule 2: ci/**)",
            "ci/app: tag eligible for deletion: a4 (retention rule 2: ci/**)",
            "ci/keep-recent: tag eligible for deletion: stale (retention rule 1: ci/keep-recent)",
            "team/svc: tag eligible for deletion: idle (retention rule 3: team/*, **/cache)",
            "team/svc/cache: tag eligible for deletion: idle (retention rule 3: team/*, **/cache)",
        ]
        assert "5 tags would be untagged by retention" in dry.stderr

        # With --delete-untagged the dry run also lists what the untagging lets go.
        dry = garbage_collect(
            registry.config_path, "--retention", "--delete-untagged", "--dry-run", "--grace-period", "0s"
        )
        real = garbage_collect(
            registry.config_path, "--retention", "--delete-untagged", "--grace-period", "0s"
        )
        assert [line.replace("eligible for deletion", "deleted") for line in dry.stdout.splitlines()] == (
            real.stdout.splitlines()
        )
        assert "5 tags untagged by retention" in real.stderr
        removed = {("ci/app", "a1"), ("ci/app", "a4"), ("ci/keep-recent", "stale")}
        removed |= {("team/svc", "idle"), ("team/svc/cache", "idle")}
        for (repository, tag), image in images.items():
            if (repository, tag) in removed:
                assert f"{repository}: manifest deleted: {image.digest}" in real.stdout
                assert served.status("GET", f"/v2/{repository}/manifests/{image.digest}") == 404
                assert not (root / REPOSITORIES / repository / "_dockyard/tags" / tag).exists()
            else:
                assert served.verify_tree(repository, tag)
        assert served.tags("ci/app") == ["a2", "a3", "v1"]
        assert "team/svc/cache" not in served.catalog()  # its only tag and manifest went
        assert check_layout(root).problems == []


def test_retention_needs_rules_and_refuses_read_only_mode(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    registry = start_registry()
    done = dockyard(registry.config_path, "garbage-collect", "--retention")
    assert done.returncode != 0
    assert "has no rules (storage.maintenance.retention)" in done.stderr
    config = yaml.safe_load(registry.config_path.read_text())
    config["storage"]["maintenance"] = {"readonly": {"enabled": True}, "retention": RULES}
    read_only = tmp_path / "read-only.yml"
    read_only.write_text(yaml.safe_dump(config))
    done = dockyard(read_only, "garbage-collect", "--retention", "--dry-run")
    assert done.returncode != 0
    assert "retention is disabled: the storage is in read-only mode" in done.stderr


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"repositories": ["ci/a**"], "keep": {"newest": 1}}, "'ci/a**' is not a repository glob"),
        ({"repositories": ["CI/*"], "keep": {"newest": 1}}, "'CI/*' is not a repository glob"),
        ({"repositories": ["ci//x"], "keep": {"newest": 1}}, "'ci//x' is not a repository glob"),
        ({"keep": {"newest": 1}}, "retention[0].repositories: required"),
        ({"repositories": ["ci/*"], "keep": {"newest": -1}}, "newest: must be an integer of at least 0"),
        ({"repositories": ["ci/*"], "keep": {"pushedwithin": "-1h"}}, "pushedwithin: must be at least 0"),
        ({"repositories": ["ci/*"], "keep": {"pulledwithin": "soon"}}, "retention[0].keep.pulledwithin"),
        ({"repositories": ["ci/*"], "keep": {"tags": ["v/1"]}}, "'v/1' is not a tag pattern"),
        ({"repositories": ["ci/*"], "keep": {}}, "keep: required: at least one of"),
        ({"repositories": ["ci/*"], "keep": {"oldest": 1}}, "keep.oldest: unknown key"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, rule: dict[str, Any], problem: str) -> None:
    config = tmp_path / "config.yml"
    storage = {"filesystem": {"rootdirectory": str(tmp_path)}, "maintenance": {"retention": [rule]}}
    config.write_text(yaml.safe_dump({"version": "0.1", "storage": storage}))
    with pytest.raises(ConfigError) as raised:
        load_config(config, environ={})
    assert any(problem in line for line in raised.value.problems), raised.value.problems
    assert all(line.startswith("storage.maintenance.retention[0]") for line in raised.value.problems)
    done = dockyard(config, "garbage-collect", "--retention")
    assert done.returncode != 0
    assert problem in done.stderr
    assert "Traceback" not in done.stderr
