"""oras (the PyPI library) against the registry: artifacts, pulling them back, referrers."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

import oras.client
import oras.oci
import pytest

from tests.support.images import EMPTY_CONFIG, OCI_MANIFEST, Blob, json_bytes
from tests.support.served import RegistryEndpoint, Served

pytestmark = pytest.mark.clients

ARTIFACT_TYPE = "application/vnd.example.report.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def oras_client(target_registry: RegistryEndpoint) -> oras.client.OrasClient:
    return oras.client.OrasClient(hostname=target_registry.host, insecure=True)


class PushOptions(TypedDict, total=False):
    manifest_annotations: dict[str, str]
    subject: oras.oci.Subject
    do_chunked: bool
    chunk_size: int


def push_artifact(
    client: oras.client.OrasClient, reference: str, directory: Path, **options: Unpack[PushOptions]
) -> dict[str, str]:
    """Push two files of fresh random content, typed by the config media type; returns digests."""
    files = {
        "report.json": json_bytes({"nonce": os.urandom(8).hex()}),
        "data.bin": os.urandom(300_000),
    }
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_bytes(content)
    (directory / "config.json").write_bytes(json_bytes({"tool": "tests"}))
    response = client.push(
        target=reference,
        files=[f"{directory / name}:application/vnd.example.file" for name in files],
        manifest_config=f"{directory / 'config.json'}:{ARTIFACT_TYPE}",
        disable_path_validation=True,
        quiet=True,
        **options,  # type: ignore[arg-type]  # oras annotates subject as str, takes an oras.oci.Subject
    )
    assert response.status_code == 201, response.text
    return {name: sha256_file(directory / name) for name in files}


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_and_pull_artifact(
    chunked: bool,
    oras_client: oras.client.OrasClient,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    repository = new_repository("artifact")
    reference = f"{target_registry.host}/{repository}:report"
    pushed = push_artifact(
        oras_client,
        reference,
        tmp_path / "pushed",
        manifest_annotations={"org.example.run": "clients"},
        do_chunked=chunked,  # PATCHes with Content-Range, likely landing on different workers
        chunk_size=64 * 1024,
    )

    manifest = served.manifest(repository, "report")
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.document["config"]["mediaType"] == ARTIFACT_TYPE
    assert manifest.document["annotations"] == {"org.example.run": "clients"}
    served.verify_tree(repository, "report")

    # oras does not check what it downloads: every file's digest is checked here.
    pulled = oras_client.pull(target=reference, outdir=str(tmp_path / "pulled"))
    assert {Path(path).name: sha256_file(Path(path)) for path in pulled} == pushed
    by_title = {
        layer["annotations"]["org.opencontainers.image.title"]: layer["digest"]
        for layer in manifest.document["layers"]
    }
    assert by_title == pushed


def test_referrers_of_an_artifact(
    oras_client: oras.client.OrasClient,
    target_registry: RegistryEndpoint,
    served: Served,
    new_repository: Callable[[str], str],
    tmp_path: Path,
) -> None:
    repository = new_repository("referred")
    push_artifact(oras_client, f"{target_registry.host}/{repository}:subject", tmp_path / "subject")
    subject = served.manifest(repository, "subject")
    assert served.referrers(repository, subject.digest)["manifests"] == []

    # A referrer typed by its config media type (the oras library's way).
    subject_descriptor = oras.oci.Subject(OCI_MANIFEST, subject.digest, len(subject.data))
    push_artifact(
        oras_client,
        f"{target_registry.host}/{repository}:report",
        tmp_path / "report",
        subject=subject_descriptor,
        manifest_annotations={"org.example.kind": "report"},
    )
    report = served.manifest(repository, "report")
    # A referrer with an explicit OCI 1.1 artifactType and the empty config.
    signature_data = Blob(SIGNATURE_TYPE, os.urandom(512))
    container = oras_client.get_container(f"{target_registry.host}/{repository}:signature")
    for blob in (EMPTY_CONFIG, signature_data):
        path = tmp_path / blob.digest.removeprefix("sha256:")
        path.write_bytes(blob.data)
        uploaded = oras_client.upload_blob(str(path), container, blob.descriptor())
        assert uploaded.status_code == 201, uploaded.text
    response = oras_client.upload_manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_TYPE,
            "config": EMPTY_CONFIG.descriptor(),
            "layers": [signature_data.descriptor()],
            "subject": dataclasses.asdict(subject_descriptor),
            "annotations": {"org.example.kind": "signature"},
        },
        container,
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject.digest
    signature = served.manifest(repository, "signature")
    assert response.headers["Docker-Content-Digest"] == signature.digest

    referrers = served.referrers(repository, subject.digest)
    by_digest = {descriptor["digest"]: descriptor for descriptor in referrers["manifests"]}
    assert by_digest == {
        report.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": report.digest,
            "size": len(report.data),
            "artifactType": ARTIFACT_TYPE,
            "annotations": {"org.example.kind": "report"},
        },
        signature.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": signature.digest,
            "size": len(signature.data),
            "artifactType": SIGNATURE_TYPE,
            "annotations": {"org.example.kind": "signature"},
        },
    }
    filtered = served.http.get(
        f"/v2/{repository}/referrers/{subject.digest}", params={"artifactType": SIGNATURE_TYPE}
    )
    assert filtered.status_code == 200
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [signature.digest]
    for referrer in (report, signature):
        assert referrer.document["subject"]["digest"] == subject.digest
        served.verify_tree(repository, referrer.digest)
