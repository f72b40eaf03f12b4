"""Configuration in Distribution's format: parsing and ``REGISTRY_*`` overrides, and what every
supported key does to a running registry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from registry.config import EMBEDDED_DEFAULT, ConfigError, load_config
from tests.support.images import OCI_MANIFEST, digest_of
from tests.support.launcher import Launcher, write_config
from tests.support.processes import free_port
from tests.support.pushing import (
    error_codes,
    expect,
    image_manifest,
    push_blob,
    push_image,
    push_manifest,
    start_upload,
)
from tests.support.registry import StartRegistry

# --- parsing, no server -------------------------------------------------------------------------


def _minimal(root: str = "/srv/registry") -> dict[str, Any]:
    return {"version": "0.1", "storage": {"filesystem": {"rootdirectory": root}}}


def _load(tmp_path: Path, config: dict[str, Any] | str, environ: dict[str, str] | None = None) -> Any:
    return load_config(write_config(tmp_path / "config.yml", config), environ or {})


def test_embedded_default() -> None:
    config = load_config(None, {})
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters == {"rootdirectory": "./data"}
    assert config.storage.delete_enabled is True
    assert config.http.addr == "0.0.0.0:5000"
    assert config.warnings == ()
    assert EMBEDDED_DEFAULT["storage"]["filesystem"]["rootdirectory"] == "./data"


def test_distribution_defaults_for_omitted_keys(tmp_path: Path) -> None:
    config = _load(tmp_path, _minimal())
    assert config.storage.delete_enabled is False
    assert config.storage.read_only is False
    assert config.storage.redirect is True
    assert config.storage.upload_purging.enabled is True
    assert config.storage.upload_purging.age == 168 * 3600
    assert config.storage.upload_purging.interval == 24 * 3600
    assert config.catalog_max_entries == 1000
    assert config.log.level == "info"
    assert config.log.formatter == "text"
    assert config.http.relative_urls is False
    assert config.http.drain_timeout == 20.0


def test_environment_overrides_take_effect(tmp_path: Path) -> None:
    environ = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/somewhere",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h10m",
        "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true",
        "REGISTRY_CATALOG_MAXENTRIES": "7",
        "REGISTRY_LOG_LEVEL": "debug",
        "REGISTRY_LOG_FORMATTER": "json",
        "REGISTRY_HTTP_ADDR": "127.0.0.1:6000",
        "REGISTRY_HTTP_HOST": "https://registry.example.com",
        "REGISTRY_HTTP_RELATIVEURLS": "true",
        "REGISTRY_HTTP_SECRET": "s3cret",
        "UNRELATED_VARIABLE": "ignored",
    }
    config = _load(tmp_path, _minimal(), environ)
    assert config.storage.parameters["rootdirectory"] == "/somewhere"
    assert config.storage.delete_enabled is True
    assert config.storage.upload_purging.age == 2 * 3600 + 10 * 60
    assert config.storage.read_only is True
    assert config.catalog_max_entries == 7
    assert (config.log.level, config.log.formatter) == ("debug", "json")
    assert config.http.addr == "127.0.0.1:6000"
    assert config.http.host == "https://registry.example.com"
    assert config.http.relative_urls is True
    assert config.http.secret == "s3cret"


@pytest.mark.parametrize("value", ["0123", "yes", "1e3", "null"])
def test_string_values_stay_strings(tmp_path: Path, value: str) -> None:
    """Distribution reads a string key's text as written, in the file and in REGISTRY_* variables;
    YAML's other readings of it (octal, boolean, float, null) must not change a secret or header."""
    from_environment = _load(
        tmp_path, _minimal(), {"REGISTRY_HTTP_SECRET": value, "REGISTRY_HTTP_HEADERS_X-TOKEN": value}
    )
    assert from_environment.http.secret == value
    assert from_environment.http.headers == {"x-token": [value]}
    from_file = _load(tmp_path, f"{yaml.safe_dump(_minimal())}http:\n  secret: {value}\n")
    assert from_file.http.secret == value


def test_environment_override_problems_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, _minimal(), {"REGISTRY_CATALOG_MAXENTRIES": "many", "REGISTRY_LOG_LEVEL": "loud"})
    assert any("catalog.maxentries" in p for p in raised.value.problems)
    assert any("log.level" in p for p in raised.value.problems)


@pytest.mark.parametrize(
    ("level", "meaning"),
    [
        ("panic", "error"),
        ("fatal", "error"),
        ("error", "error"),
        ("warn", "warn"),
        ("warning", "warn"),
        ("info", "info"),
        ("debug", "debug"),
        ("trace", "debug"),
    ],
)
def test_every_distribution_log_level_is_accepted(tmp_path: Path, level: str, meaning: str) -> None:
    """Distribution's logger takes all of these; a config using any of them must load."""
    config = _load(tmp_path, {**_minimal(), "log": {"level": level}})
    assert config.log.level == meaning


def test_every_problem_is_collected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(
            tmp_path,
            {
                "version": "0.2",
                "storage": {
                    "filesystem": {"rootdirectory": "/x"},
                    "delete": {"enabled": "maybe"},
                    "maintenance": {"uploadpurging": {"interval": "0s"}},
                },
                "http": {"addr": "nonsense", "host": "registry.example.com"},
                "log": {"formatter": "xml"},
                "catalog": {"maxentries": 0},
            },
        )
    problems = "\n".join(raised.value.problems)
    for key in ("version", "storage.delete.enabled", "uploadpurging.interval", "http.addr", "http.host",
                "log.formatter", "catalog.maxentries"):  # fmt: skip
        assert key in problems
    assert len(raised.value.problems) == 7


def test_scheduled_garbage_collection(tmp_path: Path) -> None:
    settings = _load(tmp_path, _minimal()).storage.garbage_collect
    assert (settings.enabled, settings.interval, settings.grace_period, settings.delete_untagged) == (
        False,
        24 * 3600,
        3600,
        False,
    )
    given = {"enabled": True, "interval": "2s", "graceperiod": "0s", "deleteuntagged": "true"}
    config = {**_minimal(), "storage": {**_minimal()["storage"], "maintenance": {"garbagecollect": given}}}
    settings = _load(tmp_path, config).storage.garbage_collect
    assert (settings.enabled, settings.interval, settings.grace_period, settings.delete_untagged) == (
        True,
        2,
        0,
        True,
    )
    environ = {"REGISTRY_STORAGE_MAINTENANCE_GARBAGECOLLECT_INTERVAL": "1h30m"}
    assert _load(tmp_path, _minimal(), environ).storage.garbage_collect.interval == 5400


def test_scheduled_garbage_collection_problems_are_reported(tmp_path: Path) -> None:
    wrong = {"enabled": "sometimes", "interval": "0s", "graceperiod": "soon", "every": "1h"}
    config = {**_minimal(), "storage": {**_minimal()["storage"], "maintenance": {"garbagecollect": wrong}}}
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, config)
    problems = "\n".join(raised.value.problems)
    for key in ("enabled", "interval", "graceperiod", "every"):
        assert f"storage.maintenance.garbagecollect.{key}" in problems
    assert len(raised.value.problems) == 4


def _with_cache(cache: dict[str, Any]) -> dict[str, Any]:
    return {**_minimal(), "storage": {**_minimal()["storage"], "cache": cache}}


def test_blob_descriptor_cache(tmp_path: Path) -> None:
    assert _load(tmp_path, _minimal()).storage.descriptor_cache is None  # every read asks storage
    cache = _load(tmp_path, _with_cache({"blobdescriptor": "inmemory"})).storage.descriptor_cache
    assert (cache.size, cache.expiry) == (10_000, 5.0)  # Distribution's size; Dockyard's expiry
    given = {"blobdescriptor": "inmemory", "blobdescriptorsize": 0, "blobdescriptorexpiry": "1m"}
    cache = _load(tmp_path, _with_cache(given)).storage.descriptor_cache
    assert (cache.size, cache.expiry) == (0, 60.0)
    assert _load(tmp_path, _with_cache({"layerinfo": "inmemory"})).storage.descriptor_cache is not None
    environ = {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "inmemory"}
    loaded = _load(tmp_path, _minimal(), environ)
    assert loaded.storage.descriptor_cache is not None
    assert loaded.warnings == ()


def test_a_blob_descriptor_cache_the_registry_lacks_is_named_in_the_warning(tmp_path: Path) -> None:
    loaded = _load(tmp_path, _with_cache({"blobdescriptor": "redis"}))
    assert loaded.storage.descriptor_cache is None
    [warning] = loaded.warnings
    assert "storage.cache.blobdescriptor: redis" in warning


def test_blob_descriptor_cache_problems_are_reported(tmp_path: Path) -> None:
    wrong = {"blobdescriptor": "inmemory", "blobdescriptorsize": -1, "blobdescriptorexpiry": "0s"}
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, _with_cache(wrong))
    problems = "\n".join(raised.value.problems)
    for key in ("blobdescriptorsize", "blobdescriptorexpiry"):
        assert f"storage.cache.{key}" in problems
    assert len(raised.value.problems) == 2


def test_http_workers(tmp_path: Path) -> None:
    assert _load(tmp_path, _minimal()).http.workers is None  # one per usable CPU
    assert _load(tmp_path, {**_minimal(), "http": {"workers": 4}}).http.workers == 4
    assert _load(tmp_path, _minimal(), {"REGISTRY_HTTP_WORKERS": "3"}).http.workers == 3
    for wrong in (0, "many"):
        with pytest.raises(ConfigError) as raised:
            _load(tmp_path, {**_minimal(), "http": {"workers": wrong}})
        assert [p for p in raised.value.problems if p.startswith("http.workers")], raised.value.problems


def test_http_loopaffinity(tmp_path: Path) -> None:
    assert _load(tmp_path, _minimal()).http.loop_affinity is True
    assert _load(tmp_path, {**_minimal(), "http": {"loopaffinity": False}}).http.loop_affinity is False
    assert _load(tmp_path, _minimal(), {"REGISTRY_HTTP_LOOPAFFINITY": "false"}).http.loop_affinity is False
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {**_minimal(), "http": {"loopaffinity": "sometimes"}})
    assert [p for p in raised.value.problems if p.startswith("http.loopaffinity")], raised.value.problems


def test_http_accelredirect(tmp_path: Path) -> None:
    assert _load(tmp_path, _minimal()).http.accel_redirect is None  # the registry sends blobs itself
    given = {**_minimal(), "http": {"accelredirect": "/_dockyard/blobs/"}}
    assert _load(tmp_path, given).http.accel_redirect == "/_dockyard/blobs/"
    from_environment = _load(tmp_path, _minimal(), {"REGISTRY_HTTP_ACCELREDIRECT": "/internal/b/"})
    assert from_environment.http.accel_redirect == "/internal/b/"
    for wrong in ("_dockyard/blobs/", "/_dockyard/blobs", "/", "/../blobs/", "/a b/", "/x/?y/"):
        with pytest.raises(ConfigError) as raised:
            _load(tmp_path, {**_minimal(), "http": {"accelredirect": wrong}})
        assert [p for p in raised.value.problems if p.startswith("http.accelredirect")], wrong


def test_http_accelredirect_needs_files_nginx_can_read(tmp_path: Path) -> None:
    on_s3 = {"version": "0.1", "storage": {"s3": {"bucket": "b", "region": "us-east-1"}}}
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {**on_s3, "http": {"accelredirect": "/_dockyard/blobs/"}})
    assert [p for p in raised.value.problems if p.startswith("http.accelredirect")], raised.value.problems


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10.0), ("1m30s", 90.0), ("0", 0.0)])
def test_http_draintimeout(tmp_path: Path, text: str, seconds: float) -> None:
    assert _load(tmp_path, {**_minimal(), "http": {"draintimeout": text}}).http.drain_timeout == seconds


def test_http_draintimeout_must_be_a_duration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {**_minimal(), "http": {"draintimeout": "forever"}})
    assert [p for p in raised.value.problems if p.startswith("http.draintimeout")]


@pytest.mark.parametrize(
    "addr", ["localhost:99999", ":65536", "127.0.0.1:", "nonsense", "host:5000:1", ":\uff15\uff10"]
)
def test_http_addr_must_be_host_and_port(tmp_path: Path, addr: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {**_minimal(), "http": {"addr": addr}})
    assert any(p.startswith("http.addr") for p in raised.value.problems)


def test_trusted_proxies_are_networks_and_default_to_loopback(tmp_path: Path) -> None:
    assert _load(tmp_path, _minimal()).http.trusted_proxies == ("127.0.0.1/32", "::1/128")
    listed = {**_minimal(), "http": {"trustedproxies": ["10.0.0.7", "10.1.2.3/16", "fd00::/8"]}}
    assert _load(tmp_path, listed).http.trusted_proxies == ("10.0.0.7/32", "10.1.0.0/16", "fd00::/8")
    environ = {"REGISTRY_HTTP_TRUSTEDPROXIES": "192.0.2.1, 198.51.100.0/24"}
    from_environment = _load(tmp_path, _minimal(), environ).http.trusted_proxies
    assert from_environment == ("192.0.2.1/32", "198.51.100.0/24")
    assert _load(tmp_path, {**_minimal(), "http": {"trustedproxies": []}}).http.trusted_proxies == ()


@pytest.mark.parametrize("value", [["proxy.example.com"], ["10.0.0.0/33"], {"a": "b"}])
def test_trusted_proxies_must_be_addresses(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {**_minimal(), "http": {"trustedproxies": value}})
    assert [p for p in raised.value.problems if p.startswith("http.trustedproxies")], raised.value.problems


@pytest.mark.parametrize(
    "addr", [":5000", "0.0.0.0:5000", "localhost:65535", "[::1]:5000", "registry.example.com:443"]
)
def test_valid_http_addr(tmp_path: Path, addr: str) -> None:
    assert _load(tmp_path, {**_minimal(), "http": {"addr": addr}}).http.addr == addr


@pytest.mark.parametrize(
    "storage",
    [
        {"filesystem": {"rootdirectory": "/x"}, "s3": {"bucket": "b"}},
        {"delete": {"enabled": True}},
        {"azure": {"accountname": "a"}},
    ],
    ids=["two-drivers", "no-driver", "unsupported-driver"],
)
def test_storage_needs_exactly_one_supported_driver(tmp_path: Path, storage: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {"version": "0.1", "storage": storage})
    assert any(p.startswith("storage") for p in raised.value.problems)


# --- a Distribution config, unchanged -----------------------------------------------------------

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  accesslog:
    disabled: true
  level: debug
  formatter: text
  fields:
    service: registry
    environment: staging
  hooks:
    - type: mail
      disabled: true
      levels:
        - panic
      options:
        smtp:
          addr: mail.example.com:25
          username: mailuser
          password: password
          insecure: true
        from: sender@example.com
        to:
          - errors@example.com
loglevel: debug # deprecated: use "log"
storage:
  filesystem:
    rootdirectory: {root}
    maxthreads: 100
  tag:
    concurrencylimit: 8
  delete:
    enabled: false
  redirect:
    disable: false
  cache:
    blobdescriptor: inmemory
    blobdescriptorsize: 10000
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
catalog:
  maxentries: 1000
tags:
  maxtags: 1000
http:
  addr: localhost:5000
  host: https://myregistryaddress.org:5000
  secret: asecretforlocaldevelopment
  relativeurls: false
  draintimeout: 60s
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: false
  h2c:
    enabled: false
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      timeout: 1s
      threshold: 10
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
redis:
  addrs: [localhost:6379]
  password: asecret
  db: 0
  dialtimeout: 10ms
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://www\\.example\\.com/
"""
UNSUPPORTED_IN_EXAMPLE = (
    "redis", "tags", "log.hooks", "storage.tag",
    "http.http2", "http.h2c",
)  # fmt: skip
NON_DISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def test_distribution_config_starts_unchanged(launch: Launcher, tmp_path: Path) -> None:
    root = tmp_path / "root"
    text = DISTRIBUTION_CONFIG.replace("{root}", str(root))
    # The debug listener is served now: on a free port, not the example's 5001.
    text = text.replace("localhost:5001", f"localhost:{free_port()}")
    config = write_config(tmp_path / "config.yml", text)
    registry = launch([str(config), "--workers", "2"])
    with registry.client() as client:
        manifest = push_image(client, "example/app", "1.0")
        digest = digest_of(manifest)
        served = expect(client.get("/v2/example/app/manifests/1.0"), 200)
        assert served.content == manifest
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert client.get("/v2/nothing/here").headers["X-Content-Type-Options"] == "nosniff"
        refused = client.delete(f"/v2/example/app/manifests/{digest}")  # storage.delete.enabled: false
        assert refused.status_code == 405
        assert error_codes(refused) == ["UNSUPPORTED"]
        location = start_upload(client, "example/app")
        assert location.startswith("https://myregistryaddress.org:5000/v2/example/app/blobs/uploads/")
        config_blob, allowed, denied = (
            os.urandom(50),
            "https://cdn.example.com/layer",
            "https://www.example.com/layer",
        )
        push_blob(client, "example/app", config_blob)
        for url, status in ((allowed, 201), (denied, 400), ("https://elsewhere.org/layer", 400)):
            foreign = {
                "mediaType": NON_DISTRIBUTABLE,
                "digest": digest_of(url.encode()),
                "size": 10,
                "urls": [url],
            }
            body = json.dumps({**json.loads(image_manifest(config_blob, [])), "layers": [foreign]}).encode()
            response = client.put(
                "/v2/example/app/manifests/foreign", content=body, headers={"Content-Type": OCI_MANIFEST}
            )
            assert response.status_code == status, (url, response.text)
    assert (
        root / "docker/registry/v2/repositories/example/app/_manifests/tags/1.0/current/link"
    ).read_text() == digest
    log = registry.log()
    warnings = [line for line in log.splitlines() if "not supported" in line]
    assert len(warnings) == 1, warnings
    assert "WARNING" in warnings[0]
    assert [key for key in UNSUPPORTED_IN_EXAMPLE if key not in warnings[0]] == []
    assert "notifications" not in warnings[0]  # served: webhooks
    assert "service=registry" in log  # log.fields
    assert '"GET /v2/' not in log  # log.accesslog.disabled


def test_environment_overrides_reach_the_running_registry(launch: Launcher, tmp_path: Path) -> None:
    configured, overridden = tmp_path / "configured", tmp_path / "overridden"
    config = write_config(
        tmp_path / "config.yml",
        {
            **_minimal(str(configured)),
            "storage": {"filesystem": {"rootdirectory": str(configured)}, "delete": {"enabled": True}},
        },
    )
    environ = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(overridden),
        "REGISTRY_STORAGE_DELETE_ENABLED": "false",
        "REGISTRY_CATALOG_MAXENTRIES": "1",
        "REGISTRY_LOG_FORMATTER": "json",
        "REGISTRY_HTTP_HEADERS_X-FROM-ENVIRONMENT": "from-env",
    }
    registry = launch([str(config), "--workers", "2"], env=environ)
    with registry.client() as client:
        digest = push_blob(client, "env/one", b"one")
        push_blob(client, "env/two", b"two")
        for name in ("env/one", "env/two"):
            push_manifest(
                client, name, "v1", image_manifest(b"one" if name == "env/one" else b"two", []), OCI_MANIFEST
            )
        assert (
            expect(client.delete(f"/v2/env/one/blobs/{digest}"), 405).headers["x-from-environment"]
            == "from-env"
        )
        page = expect(client.get("/v2/_catalog"), 200)
        assert page.json() == {"repositories": ["env/one"]}
        assert 'rel="next"' in page.headers["Link"]
    assert (overridden / "docker/registry/v2/repositories/env/one").is_dir()
    assert not configured.exists()
    assert all(json.loads(line) for line in registry.log().splitlines() if line.strip())


# --- each supported key on a running registry ---------------------------------------------------


def test_json_log_formatter_writes_json_lines(start_registry: StartRegistry) -> None:
    registry = start_registry({"log": {"formatter": "json", "fields": {"service": "dockyard-test"}}})
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        expect(client.get("/v2/"), 200)
        expect(client.get("/v2/json/missing/tags/list"), 404)
    lines = [line for line in registry.log().splitlines() if line.strip()]
    assert len(lines) >= 3
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "msg"} <= set(entry), entry
        assert entry["service"] == "dockyard-test"
    assert any("GET /v2/json/missing/tags/list" in entry["msg"] for entry in entries)


@pytest.mark.parametrize(("level", "info_shown"), [("info", True), ("error", False)])
def test_log_level_filters_messages(start_registry: StartRegistry, level: str, info_shown: bool) -> None:
    registry = start_registry({"log": {"level": level}})
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        expect(client.get("/v2/"), 200)
    log = registry.log()
    assert ("INFO registry:" in log) is info_shown
    assert ("INFO uvicorn.error:" in log) is info_shown


def test_http_headers_on_every_response(start_registry: StartRegistry) -> None:
    headers = {
        "X-Frame-Options": ["DENY"],
        "X-Several": ["a", "b"],
        "Strict-Transport-Security": ["max-age=31536000"],
    }
    registry = start_registry({"http": {"headers": headers}})
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        digest = push_blob(client, "headers/app", b"content")
        responses = [
            client.get("/v2/"),
            client.get(f"/v2/headers/app/blobs/{digest}"),
            client.head(f"/v2/headers/app/blobs/{digest}"),
            client.get("/v2/headers/missing/manifests/latest"),
            client.get("/v2/NOT-VALID/tags/list"),
            client.post("/v2/headers/app/blobs/uploads/"),
        ]
    for response in responses:
        assert response.headers["X-Frame-Options"] == "DENY", response.request.url
        assert response.headers.get_list("X-Several") == ["a", "b"]
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_deletes_disabled(start_registry: StartRegistry) -> None:
    registry = start_registry({"storage": {"delete": {"enabled": False}}})
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        manifest = push_image(client, "nodelete/app", "v1")
        digest = digest_of(manifest)
        layer = json.loads(manifest)["layers"][0]["digest"]
        for path in (
            f"/v2/nodelete/app/manifests/{digest}",
            "/v2/nodelete/app/manifests/v1",
            f"/v2/nodelete/app/blobs/{layer}",
        ):
            response = client.delete(path)
            assert response.status_code == 405, path
            assert error_codes(response) == ["UNSUPPORTED"]
        expect(client.get("/v2/nodelete/app/manifests/v1"), 200)
        expect(client.get(f"/v2/nodelete/app/blobs/{layer}"), 200)
        location = start_upload(client, "nodelete/app")
        expect(client.delete(location), 204)  # cancelling an upload is not a delete of content


def test_read_only_mode_refuses_writes_and_serves_reads(
    start_registry: StartRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    writable = start_registry(root=root)
    with httpx.Client(base_url=writable.url, timeout=30) as client:
        manifest = push_image(client, "readonly/app", "v1")
        location = start_upload(client, "readonly/app")
    writable.stop()
    registry = start_registry({"storage": {"maintenance": {"readonly": {"enabled": True}}}}, root=root)
    digest = digest_of(manifest)
    layer = json.loads(manifest)["layers"][0]["digest"]
    upload_path = httpx.URL(location).path
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        assert expect(client.get("/v2/readonly/app/manifests/v1"), 200).content == manifest
        expect(client.head(f"/v2/readonly/app/blobs/{layer}"), 200)
        assert expect(client.get("/v2/readonly/app/tags/list"), 200).json()["tags"] == ["v1"]
        assert "readonly/app" in expect(client.get("/v2/_catalog"), 200).json()["repositories"]
        writes = [
            client.post("/v2/readonly/app/blobs/uploads/"),
            client.post("/v2/readonly/app/blobs/uploads/", params={"digest": digest_of(b"x")}, content=b"x"),
            client.patch(upload_path, content=b"x"),
            client.put(upload_path, params={"digest": digest_of(b"")}),
            client.delete(upload_path),
            client.put(
                "/v2/readonly/app/manifests/v2", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            ),
            client.delete(f"/v2/readonly/app/manifests/{digest}"),
            client.delete(f"/v2/readonly/app/blobs/{layer}"),
        ]
        for response in writes:
            assert response.status_code == 405, (response.request.method, response.request.url, response.text)
            assert error_codes(response) == ["UNSUPPORTED"]
        assert expect(client.get("/v2/readonly/app/tags/list"), 200).json()["tags"] == ["v1"]
    refused = digest_of(b"x")[7:]
    # The pushed image's random blobs may share the two-hex group, so look for the blob itself.
    assert not (root / f"docker/registry/v2/blobs/sha256/{refused[:2]}/{refused}").exists()


def test_catalog_maxentries_bounds_every_page(start_registry: StartRegistry) -> None:
    registry = start_registry({"catalog": {"maxentries": 2}})
    names = [f"catalog/r{i}" for i in range(5)]
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        config = b"{}"
        for name in names:
            push_blob(client, name, config)
            push_manifest(client, name, "v1", image_manifest(config, []), OCI_MANIFEST)
        seen: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"
        while url:
            response = client.get(url)
            if response.status_code == 400:  # n above the maximum refused rather than clamped
                assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]
                url = "/v2/_catalog?n=2"
                continue
            page = expect(response, 200).json()["repositories"]
            assert len(page) <= 2
            seen += page
            url = response.links.get("next", {}).get("url")
        assert seen == names
        first = expect(client.get("/v2/_catalog"), 200)
        assert first.json()["repositories"] == names[:2]


@pytest.mark.parametrize(
    ("http", "prefix"),
    [
        ({"relativeurls": True}, "/v2/"),
        ({"host": "https://registry.example.com"}, "https://registry.example.com/v2/"),
        (
            {"host": "https://registry.example.com:8443/", "relativeurls": False},
            "https://registry.example.com:8443/v2/",
        ),
        ({}, "http://127.0.0.1:"),
    ],
    ids=["relativeurls", "host", "host-with-port", "request-host"],
)
def test_location_urls_follow_http_host_and_relativeurls(
    start_registry: StartRegistry, http: dict[str, Any], prefix: str
) -> None:
    registry = start_registry({"http": http})
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        upload = expect(client.post("/v2/urls/app/blobs/uploads/"), 202).headers["Location"]
        chunk = expect(client.patch(httpx.URL(upload).path, content=b"abc"), 202).headers["Location"]
        blob = expect(client.put(httpx.URL(chunk).path, params={"digest": digest_of(b"abc")}), 201).headers[
            "Location"
        ]
        manifest = image_manifest(b"abc", [])
        pushed = client.put(
            "/v2/urls/app/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        locations = [upload, chunk, blob, expect(pushed, 201).headers["Location"]]
    for location in locations:
        assert location.startswith(prefix), location
    assert blob.endswith(f"/v2/urls/app/blobs/{digest_of(b'abc')}")
    assert locations[3].endswith(f"/v2/urls/app/manifests/{digest_of(manifest)}")


def test_http_net_unix_takes_a_socket_path(tmp_path: Path) -> None:
    config = _load(tmp_path, {**_minimal(), "http": {"net": "unix", "addr": "/run/dockyard/registry.sock"}})
    assert (config.http.net, config.http.addr) == ("unix", "/run/dockyard/registry.sock")
    assert _load(tmp_path, _minimal()).http.net == "tcp"


@pytest.mark.parametrize(
    ("http", "problem"),
    [
        ({"net": "unix", "addr": "registry.sock"}, "http.addr"),
        ({"net": "unix", "addr": "127.0.0.1:5000"}, "http.addr"),
        ({"net": "unix"}, "http.addr"),
        ({"net": "udp", "addr": ":5000"}, "http.net"),
    ],
)
def test_http_net_and_addr_must_agree(tmp_path: Path, http: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {**_minimal(), "http": http})
    assert [p for p in raised.value.problems if p.startswith(problem)], raised.value.problems
