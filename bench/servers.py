"""The servers under measurement: Dockyard, Distribution 2.8 (Debian's docker-registry) and 3, nginx.

Each listens on a free 127.0.0.1 port and keeps all its state under the benchmark's temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.http import Connection, HTTPError
from tests.support.processes import free_port
from tests.support.tls import ServerCertificates

PROJECT = Path(__file__).resolve().parents[1]
ANCHORS = PROJECT.parent.parent / "shared" / "anchors" / "unpack-distribution.sh"
"""Unpacks CNCF Distribution 3.1.1's ``registry`` beside the checkouts (absent elsewhere)."""
DISTRIBUTION3_DIR = Path("/tmp/anchors")
SHIPPED_NGINX = PROJECT / "deploy" / "nginx"


@dataclass
class Server:
    """A started server process group; ``name`` is the label used in the tables."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    storage_root: Path | None = None
    tls: ssl.SSLContext | None = None  # reached over HTTPS (a TLS proxy in front), trusting this
    kind: str = ""  # as given to start_registry
    binary: Path | None = None  # Distribution 3's, as given to start_registry
    s3: dict[str, Any] | None = None  # the ``storage.s3`` section when it stores on S3
    redirecting: Server | None = None
    """S3 runs: the same registry on the same bucket with redirects on (blob GETs answered with
    presigned URLs), for the rows that measure them."""

    host = "127.0.0.1"

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:]

    def connect(self) -> Connection:
        return Connection(self.host, self.port, tls=self.tls)

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError, HTTPError), self.connect() as connection:
                # A proxy in front answers 502 until the registry behind it listens.
                if connection.request("GET", path).status != 502:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def ready(self, path: str = "/v2/", timeout: float = 60.0) -> Server:
        """This server once it answers ``path``; stopped, with the error raised, if it does not,
        so that no caller leaves a process group behind."""
        try:
            self.wait_ready(path, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.redirecting is not None:
            self.redirecting.stop(timeout)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        # Workers left behind by a supervisor that died first.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def blob_data_dir(self, digest: str) -> Path:
        """Where the filesystem layout keeps a blob (the same path in both registries)."""
        assert self.storage_root is not None
        algorithm, hex_digest = digest.split(":", 1)
        return self.storage_root / "docker/registry/v2/blobs" / algorithm / hex_digest[:2] / hex_digest

    def remove_blob_data(self, digest: str) -> None:
        """Drop a pushed blob's bytes after a push workload (untimed) so disk use stays flat."""
        if self.s3 is None:
            shutil.rmtree(self.blob_data_dir(digest), ignore_errors=True)
            return
        algorithm, hex_digest = digest.split(":", 1)
        key = f"docker/registry/v2/blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}/data"
        s3_client(self.s3).delete_object(Bucket=self.s3["bucket"], Key=key)


def _spawn(
    command: list[str], workdir: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = (workdir / "server.log").open("ab")
    return subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd or workdir,
        env=env,
        start_new_session=True,  # one process group: workers are stopped with their supervisor
    )


def registry_config(
    root: Path, port: int, storage: dict[str, Any] | None = None, http: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The same Distribution-format config for both registries: quiet logs, no access log;
    filesystem storage at ``root`` unless ``storage`` names another driver's section; ``http``
    adds keys to the http section."""
    return {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            **(storage or {"filesystem": {"rootdirectory": str(root)}}),
            "delete": {"enabled": True},
            # Distribution's shipped default; keeps the comparison against its usual setup.
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"127.0.0.1:{port}", **(http or {})},
    }


def start_registry(
    kind: str,
    name: str,
    workdir: Path,
    workers: int | None,
    root: Path | None = None,
    binary: Path | None = None,
    storage: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    http: dict[str, Any] | None = None,
    unix_socket: Path | None = None,
) -> Server:
    """Start ``kind`` ("dockyard", "distribution" for Debian's 2.8, or "distribution3" for the
    ``binary`` of Distribution 3) with filesystem storage at ``root``, by default under ``workdir``,
    or the driver section ``storage``; Dockyard with ``workers`` workers, or its default when None.
    ``extra`` adds top-level config sections (``proxy``); ``http``: keys added to the config's http
    section. ``unix_socket``: it listens there (``http.net: unix``), and the caller waits for it
    through whatever it puts in front."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = root or workdir / "storage"
    config_path = workdir / "config.yml"
    if unix_socket is not None:
        http = {**(http or {}), "net": "unix", "addr": str(unix_socket)}
    config_path.write_text(yaml.safe_dump({**registry_config(root, port, storage, http), **(extra or {})}))
    if kind == "dockyard":
        command = [sys.executable, "-m", "registry", "serve", str(config_path)]
        command += ["--workers", str(workers)] if workers is not None else []
        process = _spawn(command, workdir, cwd=PROJECT)
    elif kind == "distribution":
        # Its S3 driver panics on AWS_CA_BUNDLE ("HTTPClient's transport unsupported type").
        env = {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}
        process = _spawn(["docker-registry", "serve", str(config_path)], workdir, env=env)
    elif kind == "distribution3" and binary is not None:
        process = _spawn([str(binary), "serve", str(config_path)], workdir)
    else:
        raise ValueError(f"unknown registry kind {kind!r}")
    s3 = (storage or {}).get("s3")
    server = Server(name, port, workdir, process, storage_root=root, kind=kind, binary=binary, s3=s3)
    # Behind a unix socket, the caller waits through whatever it puts in front.
    return server if unix_socket is not None else server.ready()


def start_floor(kind: str, workers: int, workdir: Path) -> Server:
    """One of ``bench.floor``'s servers (``protocol`` or ``uvicorn``) with ``workers`` processes."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "bench.floor", kind, str(port), str(workers)]
    process = _spawn(command, workdir, cwd=PROJECT)
    return Server(f"{kind} x{workers}", port, workdir, process, kind=kind).ready()


_S3_CLIENTS: dict[tuple[str, str], Any] = {}


def s3_client(parameters: dict[str, Any]) -> Any:
    """A boto3 client for the bucket of a ``storage.s3`` section (one per endpoint)."""
    key = (parameters["regionendpoint"], parameters["accesskey"])
    clients = _S3_CLIENTS
    if key not in clients:
        import boto3  # noqa: PLC0415 - only S3 runs need it

        clients[key] = boto3.client(
            "s3",
            endpoint_url=parameters["regionendpoint"],
            aws_access_key_id=parameters["accesskey"],
            aws_secret_access_key=parameters["secretkey"],
            region_name=parameters["region"],
        )
    return clients[key]


def find_distribution3(binary: Path | None) -> tuple[Path | None, str]:
    """Distribution 3.1's ``registry``: ``binary`` if given, else unpacked by ``ANCHORS``; with
    the path, or None and why it is missing."""
    if binary is not None:
        if os.access(binary, os.X_OK):
            return binary, ""
        return None, f"{binary} is not an executable"
    if not ANCHORS.exists():
        return None, f"{ANCHORS} is absent; pass --distribution3 PATH to its registry binary"
    try:
        unpacked = subprocess.run(
            [str(ANCHORS), str(DISTRIBUTION3_DIR)], check=True, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{ANCHORS} failed: {exc}"
    return Path(unpacked.stdout.strip().splitlines()[-1]), ""


NGINX_CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port}{ssl};
        root {docroot};
{directives}
    }}
}}
"""


def start_nginx(
    workdir: Path,
    docroot: Path,
    certificates: ServerCertificates | None = None,
    proxy_to: str | None = None,
    fixed_base: bool = False,
) -> Server:
    """A private nginx serving ``docroot`` with sendfile: the loopback ceiling for blob pulls;
    with ``certificates``, over TLS with the shipped site's TLS settings. With ``proxy_to`` (a
    URL), it passes every request there instead, storing nothing: what relaying costs. With
    ``fixed_base``, it answers GET ``/v2/`` itself as a registry does (``{}``, JSON, the API
    version header): the ceiling of the small requests for the load generator and the loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # As root, nginx workers would drop to "nobody", who cannot read a private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    directives = ""
    if certificates is not None:
        directives = (
            f"        ssl_certificate {certificates.server_cert};\n"
            f"        ssl_certificate_key {certificates.server_key};\n"
            f"        include {SHIPPED_NGINX / 'dockyard' / 'tls.conf'};"
        )
    if proxy_to is not None:
        directives += f"\n        location / {{ proxy_pass {proxy_to}; proxy_buffering off; }}"
    if fixed_base:
        directives += (
            "\n        location = /v2/ { default_type application/json;"
            " add_header Docker-Distribution-Api-Version registry/2.0; return 200 '{}'; }"
        )
    ssl_listen = " ssl" if certificates is not None else ""
    config = NGINX_CONFIG.format(
        user=user, workdir=workdir, port=port, docroot=docroot, ssl=ssl_listen, directives=directives
    )
    config_path = workdir / "nginx.conf"
    config_path.write_text(config)
    process = _spawn(["nginx", "-p", str(workdir), "-c", str(config_path)], workdir)
    context = None if certificates is None else client_context(certificates)
    server = Server("nginx", port, workdir, process, tls=context)
    return server.ready("/v2/" if proxy_to is not None or fixed_base else "/")


def client_context(certificates: ServerCertificates) -> ssl.SSLContext:
    """A client's TLS context that trusts only the certificates' own CA."""
    return ssl.create_default_context(cafile=str(certificates.ca_cert))
