"""Repository deletion over HTTP (``DELETE /v2/<name>/_dockyard/repository``) and with
``dockyard delete-repository``, as the catalog, the tags list and skopeo see it; and a repository
whose last manifest is deleted leaving the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth import Access
from auth.keygen import generate_token_key
from registry.access import required_access
from registry.api.router import ACTIONS, Route, match
from tests.auth.registries import bearer_client, fetch_token, token_registry
from tests.auth.servers import start_token_server
from tests.lifecycle.commands import blob_file, dockyard, garbage_collect, push
from tests.support.containers import ContainerTools
from tests.support.images import random_image
from tests.support.registry import RunningRegistry, StartRegistry
from tests.support.served import Served


def _error_code(served: Served, method: str, path: str) -> tuple[int, str]:
    response = served.http.request(method, path)
    return response.status_code, response.json()["errors"][0]["code"] if response.content else ""


def test_the_route_needs_delete_on_the_repository() -> None:
    found = match(b"/v2/team/app/_dockyard/repository")
    assert found is not None
    assert (found.route, found.name, found.argument) == (Route.REPOSITORY_EXTENSION, "team/app", "repository")
    action = ACTIONS[found.route]["DELETE"]
    assert required_access(action, found.name) == (Access("repository", "team/app", "delete"),)


def test_deleted_repository_leaves_catalog_and_clients_and_its_name_starts_fresh(
    start_registry: StartRegistry, container_tools: ContainerTools
) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        app_v1, app_v2, nested, other = (random_image(layers=1) for _ in range(4))
        push(served, "del/app", "v1", app_v1)
        push(served, "del/app", "v2", app_v2)
        push(served, "del/app/nested", "v1", nested)  # a repository inside del/app's directory
        push(served, "del/other", "v1", other)
        reference = f"docker://{registry.host}/del/app:v1"
        container_tools.skopeo("inspect", reference)

        assert served.status("DELETE", "/v2/del/app/_dockyard/repository") == 202

        assert served.catalog() == ["del/app/nested", "del/other"]
        assert _error_code(served, "GET", "/v2/del/app/tags/list") == (404, "NAME_UNKNOWN")
        assert _error_code(served, "GET", "/v2/del/app/manifests/v1") == (404, "MANIFEST_UNKNOWN")
        assert _error_code(served, "DELETE", "/v2/del/app/_dockyard/repository") == (404, "NAME_UNKNOWN")
        failed = container_tools.skopeo("inspect", reference, check=False)
        assert failed.returncode != 0
        assert "manifest unknown" in failed.stderr.lower(), failed.stderr
        container_tools.skopeo("inspect", f"docker://{registry.host}/del/app/nested:v1")
        served.verify_tree("del/other", "v1")

        fresh = random_image(layers=1)
        push(served, "del/app", "v3", fresh)
        assert served.tags("del/app") == ["v3"]
        assert _error_code(served, "GET", f"/v2/del/app/blobs/{app_v1.layers[0].blob.digest}") == (
            404,
            "BLOB_UNKNOWN",
        )

        # Its blobs stay until the next collection, which takes them.
        assert (registry.root / blob_file(app_v1.layers[0].blob.digest)).exists()
        garbage_collect(registry.config_path, "--grace-period", "0s")
        assert not (registry.root / blob_file(app_v1.layers[0].blob.digest)).exists()
        for name, tag in (("del/app", "v3"), ("del/app/nested", "v1"), ("del/other", "v1")):
            served.verify_tree(name, tag)


def test_delete_repository_command(start_registry: StartRegistry) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        push(served, "cmd/one", "v1", random_image(layers=1))
        push(served, "cmd/two", "v1", random_image(layers=1))
        done = dockyard(registry.config_path, "delete-repository", "cmd/one", "cmd/missing")
        assert done.returncode == 1
        assert "cmd/one: deleted" in done.stdout
        assert "cmd/missing: repository name not known to registry" in done.stderr
        assert served.catalog() == ["cmd/two"]
        assert dockyard(registry.config_path, "delete-repository", "Not/A/Name").returncode != 0


def test_deleting_the_last_manifest_takes_the_repository_out_of_the_catalog(
    start_registry: StartRegistry,
) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        image, kept = random_image(layers=1), random_image(layers=1)
        push(served, "last/one", "v1", image)
        push(served, "last/two", "v1", kept)
        assert served.catalog() == ["last/one", "last/two"]
        assert served.status("DELETE", f"/v2/last/one/manifests/{image.digest}") == 202
        assert served.catalog() == ["last/two"]
        assert _error_code(served, "GET", "/v2/last/one/tags/list") == (404, "NAME_UNKNOWN")


def test_collection_takes_empty_repositories_out_of_the_catalog(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    registry = start_registry()
    with Served(registry.url) as served:
        push(served, "empty/kept", "v1", random_image(layers=1))
        # As Distribution leaves a repository whose last manifest it deleted: empty directories.
        manifests = registry.root / "docker/registry/v2/repositories/empty/left/_manifests"
        (manifests / "revisions" / "sha256").mkdir(parents=True)
        (manifests / "tags").mkdir()
        assert served.catalog() == ["empty/kept", "empty/left"]
        done = garbage_collect(registry.config_path, "--dry-run")
        assert "empty repository eligible for deletion: empty/left" in done.stdout
        garbage_collect(registry.config_path)
        assert served.catalog() == ["empty/kept"]


def test_deletes_disabled_refuse_repository_deletion(start_registry: StartRegistry) -> None:
    registry: RunningRegistry = start_registry({"storage": {"delete": {"enabled": False}}})
    with Served(registry.url) as served:
        push(served, "nodelete/app", "v1", random_image(layers=1))
        assert _error_code(served, "DELETE", "/v2/nodelete/app/_dockyard/repository") == (405, "UNSUPPORTED")
        assert served.catalog() == ["nodelete/app"]


def test_repository_deletion_needs_delete_on_the_repository(
    start_registry: StartRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = start_token_server(
        tmp_path_factory.mktemp("lifecycle-token-server"),
        generate_token_key(tmp_path_factory.mktemp("lifecycle-key"), "ES256"),
    )
    try:
        registry = token_registry(start_registry, server)
        alice = bearer_client(
            registry, fetch_token(server, "alice", "repository:alice/gone:pull,push,delete")
        )
        assert alice.push_image("alice/gone", "v1", random_image(layers=1)).status_code == 201
        # reader may pull anything, and nothing more
        reader = bearer_client(registry, fetch_token(server, "reader", "repository:alice/gone:pull,delete"))
        refused = reader.request("DELETE", "/v2/alice/gone/_dockyard/repository")
        assert refused.status_code == 401
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        assert reader.request("GET", "/v2/alice/gone/tags/list").status_code == 200
        assert alice.request("DELETE", "/v2/alice/gone/_dockyard/repository").status_code == 202
        assert alice.request("GET", "/v2/alice/gone/tags/list").status_code == 404
    finally:
        server.stop()


def test_read_only_mode_refuses_repository_deletion(start_registry: StartRegistry) -> None:
    registry = start_registry({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    with Served(registry.url) as served:
        response = served.http.delete("/v2/any/name/_dockyard/repository")
        assert response.status_code == 405
        assert "read-only" in response.json()["errors"][0]["message"]
