"""Tag records and retention on S3 (Ceph RADOS Gateway): pull records land in the bucket beside the
tags, push times are the tags' current links' (no record), and ``garbage-collect --retention``
keeps the newest and the pulled tags and collects the rest."""

from __future__ import annotations

import time

import pytest

from tests.lifecycle.commands import garbage_collect, push
from tests.support.ceph import CephRGW
from tests.support.images import random_image
from tests.support.registry import StartRegistry, merge, s3_storage
from tests.support.served import Served

pytestmark = [pytest.mark.s3, pytest.mark.slow]

RULES = [{"repositories": ["s3ret/**"], "keep": {"newest": 1, "pulledwithin": "1h"}}]
CONFIG = {"storage": {"maintenance": {"retention": RULES, "pullrecords": {"flushinterval": "1s"}}}}
RECORDS = "docker/registry/v2/repositories/s3ret/app/_dockyard/tags"


def test_retention_on_s3_keeps_the_newest_and_the_pulled_tags(
    start_registry: StartRegistry, ceph_rgw: CephRGW
) -> None:
    registry = start_registry(merge({"storage": s3_storage(ceph_rgw)}, CONFIG))
    bucket = registry.storage["s3"]["bucket"]
    client = ceph_rgw.client()

    def records() -> set[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=RECORDS + "/")
        return {item["Key"][len(RECORDS) + 1 :] for item in listed.get("Contents", [])}

    with Served(registry.url) as served:
        images = {tag: random_image(layers=1, layer_size=2048) for tag in ("old", "pulled", "newest")}
        for tag, image in images.items():  # in this order: "newest" is pushed last
            push(served, "s3ret/app", tag, image)
            time.sleep(1.1)  # S3 keeps times to the millisecond; whole seconds leave no doubt
        assert records() == set()  # a push's time is its tag's current link's
        assert served.status("GET", "/v2/s3ret/app/manifests/pulled") == 200
        deadline = time.monotonic() + 60
        while "pulled/pulled" not in records():
            assert time.monotonic() < deadline, records()
            time.sleep(0.5)

        done = garbage_collect(
            registry.config_path, "--retention", "--delete-untagged", "--grace-period", "0s"
        )
        assert done.stdout.splitlines()[0] == "s3ret/app: tag deleted: old (retention rule 1: s3ret/**)"
        assert f"s3ret/app: manifest deleted: {images['old'].digest}" in done.stdout
        assert served.tags("s3ret/app") == ["newest", "pulled"]
        assert records() == {"pulled/pulled"}
        assert served.status("GET", f"/v2/s3ret/app/manifests/{images['old'].digest}") == 404
        served.verify_tree("s3ret/app", "newest")
        served.verify_tree("s3ret/app", "pulled")
