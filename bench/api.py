"""The registry API calls the workloads make, each checking status codes and digests."""

from __future__ import annotations

import hashlib
import json
from typing import BinaryIO
from urllib.parse import urlsplit

from bench.data import UniqueBlob
from bench.http import Connection, FileBody, HTTPError, Redirects, Response

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCTETS = {"Content-Type": "application/octet-stream"}
MANIFEST_ACCEPT = {
    "Accept": f"{DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json",
}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def target_of(location: str) -> str:
    """Path and query of a Location header, absolute or relative."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_digest(location: str, digest: str) -> str:
    target = target_of(location)
    return f"{target}{'&' if '?' in target else '?'}digest={digest}"


def check_digest_header(response: Response, digest: str) -> None:
    got = response.header("Docker-Content-Digest")
    if got != digest:
        raise HTTPError(f"Docker-Content-Digest {got!r}, expected {digest}")


def start_upload(connection: Connection, repository: str) -> str:
    response = connection.request("POST", f"/v2/{repository}/blobs/uploads/", body=b"")
    response.expect(202)
    return response.header("Location")


def finish_upload(connection: Connection, location: str, digest: str, body: bytes | FileBody) -> None:
    response = connection.request("PUT", with_digest(location, digest), headers=OCTETS, body=body)
    response.expect(201)
    check_digest_header(response, digest)


def push_monolithic(connection: Connection, repository: str, blob: UniqueBlob, file: BinaryIO) -> None:
    """POST then one PUT carrying the whole blob."""
    location = start_upload(connection, repository)
    finish_upload(connection, location, blob.digest, blob.body(file))


def push_chunked(
    connection: Connection, repository: str, blob: UniqueBlob, file: BinaryIO, chunk_size: int
) -> None:
    """POST, one PATCH per chunk (with Content-Range), then PUT ?digest= with no body."""
    location = start_upload(connection, repository)
    offset = 0
    while offset < blob.size:
        length = min(chunk_size, blob.size - offset)
        headers = {**OCTETS, "Content-Range": f"{offset}-{offset + length - 1}"}
        response = connection.request(
            "PATCH", target_of(location), headers=headers, body=blob.body(file, offset, length)
        )
        response.expect(202)
        if response.header("Range") != f"0-{offset + length - 1}":
            raise HTTPError(f"upload Range {response.header('Range')!r} after {offset + length}")
        location = response.header("Location")
        offset += length
    finish_upload(connection, location, blob.digest, b"")


def push_bytes_like_docker(connection: Connection, repository: str, data: bytes, digest: str) -> None:
    """What docker does per layer: HEAD (absent), POST, PATCH with the bytes, PUT ?digest=."""
    connection.request("HEAD", f"/v2/{repository}/blobs/{digest}").expect(404)
    location = start_upload(connection, repository)
    response = connection.request("PATCH", target_of(location), headers=OCTETS, body=data)
    response.expect(202)
    finish_upload(connection, response.header("Location"), digest, b"")


def mount_blob(connection: Connection, repository: str, digest: str, source: str) -> None:
    response = connection.request(
        "POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}", body=b""
    )
    response.expect(201)
    check_digest_header(response, digest)


def delete_blob(connection: Connection, repository: str, digest: str) -> None:
    connection.request("DELETE", f"/v2/{repository}/blobs/{digest}").expect(202)


def image_manifest(config: tuple[str, int], layers: list[tuple[str, int]]) -> bytes:
    """A Docker schema2 manifest for a config and layers given as (digest, size)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": digest, "size": size} for digest, size in layers],
    }
    return json.dumps(manifest, indent=3).encode()


def put_manifest(connection: Connection, repository: str, reference: str, body: bytes) -> str:
    response = connection.request(
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        headers={"Content-Type": DOCKER_MANIFEST},
        body=body,
    )
    response.expect(201)
    digest = sha256_digest(body)
    check_digest_header(response, digest)
    return digest


def get_manifest(connection: Connection, repository: str, reference: str, digest: str) -> bytes:
    response = connection.request("GET", f"/v2/{repository}/manifests/{reference}", headers=MANIFEST_ACCEPT)
    response.expect(200)
    check_digest_header(response, digest)
    if sha256_digest(response.body) != digest:
        raise HTTPError(f"manifest {repository}:{reference} body does not match {digest}")
    return response.body


def get_blob_redirected(
    connection: Connection, storage: Redirects, repository: str, digest: str, expected: bytes
) -> None:
    """GET a blob from a registry that redirects it to storage, and the content from there."""
    answer = connection.request("GET", f"/v2/{repository}/blobs/{digest}")
    answer.expect(307)
    response = storage.get(answer.header("Location"))
    response.expect(200)
    if response.body != expected:
        raise HTTPError(f"blob {digest} came back different from storage")


def get_blob(connection: Connection, repository: str, digest: str, expected: bytes) -> None:
    response = connection.request("GET", f"/v2/{repository}/blobs/{digest}")
    response.expect(200)
    if response.body != expected:
        raise HTTPError(f"blob {digest} came back different")
