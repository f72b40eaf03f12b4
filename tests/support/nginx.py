"""A private nginx (Debian's package) running a site file shipped in deploy/nginx/, unmodified.

How the shipped files are used (nothing is copied or rewritten except three tokens):

- ``conf/dockyard`` is a symlink to ``deploy/nginx/dockyard/``: the site's relative
  ``include dockyard/*.conf`` lines read the shipped snippets themselves, as they read
  ``/etc/nginx/dockyard/`` on a server (nginx resolves relative paths from nginx.conf's folder).
- ``conf/site.conf`` is the shipped site file with only its ``listen`` ports (443/80 -> a free
  port on 127.0.0.1 and on ::1) and its upstream replaced, as an operator edits it: a registry on
  a unix socket takes the shipped socket line's place (the default), one on TCP the commented
  address line's (nginx on another machine), uncommented, with the socket line commented out;
  and, for a registry that hands blob downloads to nginx (``http.accelredirect``), the storage
  root in the blobs location's alias. Each must match exactly once, so a changed site file fails
  loudly.
- ``conf/tls/registry.crt`` and ``registry.key`` are the certificate and key made by the test,
  where the shipped site's relative ``ssl_certificate tls/...`` lines look for them.
- ``conf/nginx.conf`` is the small main file a distribution provides (events, logs, temp paths,
  ``include site.conf``); pid, error log and temp files all stay under ``workdir``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .processes import ServerProcess, free_port
from .tls import ServerCertificates

PROJECT = Path(__file__).resolve().parents[2]
SHIPPED = PROJECT / "deploy" / "nginx"
HTTP_SITE = SHIPPED / "dockyard-http.conf"
TLS_SITE = SHIPPED / "dockyard-tls.conf"
SHIPPED_UPSTREAM = "server unix:/run/dockyard/registry.sock;"
"""The sites' upstream as shipped: the registry on the same machine, on its unix socket."""
SHIPPED_TCP_UPSTREAM = "#server 10.0.0.11:5000;"
"""The sites' documented variant, commented: the registry's address, nginx on another machine."""
SHIPPED_STORAGE_ROOT = "alias /var/lib/dockyard/docker/registry/v2/blobs/;"

_LISTEN = re.compile(r"^(\s*)(#\s*)?(listen\s+)(\[::\]:)?(80|443)\b", re.MULTILINE)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed (Debian package nginx)")
    return found


def free_dual_stack_port() -> int:
    """A port free on both 127.0.0.1 and ::1, so one site can listen on both."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("::1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def site_for_test(
    site: str, upstream: str | Sequence[str], port: int, ipv6: bool = True, storage_root: Path | None = None
) -> str:
    """``site`` with its listen ports moved to ``port`` on loopback and its upstream's server to
    ``upstream``: ``unix:PATH`` in the socket line, HOST:PORT in the address line (uncommented,
    the socket line commented); several addresses become one ``server`` line each (replicas,
    round-robin).
    ``ipv6``: uncomment the IPv6 listen line, as the site tells operators on a host with IPv6.
    ``storage_root``: the registry's filesystem root, where nginx finds the blobs it serves."""
    listens = [(bool(m.group(2)), m.group(4) or "") for m in _LISTEN.finditer(site)]
    if sorted(listens) != [(False, ""), (True, "[::]:")]:
        raise ValueError(f"expected an IPv4 listen line and a commented IPv6 one, found {listens}")
    for line in (SHIPPED_UPSTREAM, SHIPPED_TCP_UPSTREAM):
        if site.count(line) != 1:
            raise ValueError(f"expected exactly one {line!r} in the site file")
    if site.count(SHIPPED_STORAGE_ROOT) != 1:
        raise ValueError(f"expected exactly one {SHIPPED_STORAGE_ROOT!r} in the site file")
    if storage_root is not None:
        site = site.replace(SHIPPED_STORAGE_ROOT, f"alias {storage_root}/docker/registry/v2/blobs/;")

    def loopback(match: re.Match[str]) -> str:
        if match.group(4) and not ipv6:
            return match.group(0)
        address = "[::1]" if match.group(4) else "127.0.0.1"
        return f"{match.group(1)}{match.group(3)}{address}:{port}"

    servers = [upstream] if isinstance(upstream, str) else list(upstream)
    lines = "\n    ".join(f"server {address};" for address in servers)
    site = _LISTEN.sub(loopback, site)
    if all(address.startswith("unix:") for address in servers):
        return site.replace(SHIPPED_UPSTREAM, lines)
    return site.replace(SHIPPED_UPSTREAM, f"#{SHIPPED_UPSTREAM}").replace(SHIPPED_TCP_UPSTREAM, lines)


def main_config(extra_http: str = "") -> str:
    """What a distribution's nginx.conf provides around the site; paths relative to the prefix."""
    # Workers run as the test's user: they only touch the pytest temp dir.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 2;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        '    log_format dockyard_test \'$remote_addr "$request" $status $server_protocol '
        "$ssl_protocol $request_length $bytes_sent $upstream_status';\n"
        "    access_log logs/access.log dockyard_test;\n"
        "    client_body_temp_path tmp/body;\n"
        "    proxy_temp_path tmp/proxy;\n"
        "    fastcgi_temp_path tmp/fastcgi;\n"
        "    uwsgi_temp_path tmp/uwsgi;\n"
        "    scgi_temp_path tmp/scgi;\n"
        f"{extra_http}"
        "    include site.conf;\n"
        "}\n"
    )


class Nginx:
    """nginx serving one shipped site file in front of ``upstream`` (``unix:PATH``, HOST:PORT, or
    several addresses)."""

    def __init__(
        self,
        workdir: Path,
        site: Path,
        upstream: str | Sequence[str],
        certificates: ServerCertificates | None = None,
        extra_http: str = "",
        port: int | None = None,
        ipv6: bool = True,
        storage_root: Path | None = None,
    ) -> None:
        """``extra_http`` adds directives to the http block; ``port`` is picked when not given;
        ``ipv6``: the site's commented IPv6 listen line is uncommented; ``storage_root``: the
        registry's filesystem root, for blobs nginx serves itself (``http.accelredirect``)."""
        self.ipv6 = ipv6
        self.storage_root = storage_root
        self.workdir = workdir
        self.site = site
        self.upstream = upstream
        self.certificates = certificates
        self.port = port or free_dual_stack_port()
        self.process: ServerProcess | None = None
        self._write_config(extra_http)

    @property
    def tls(self) -> bool:
        return self.certificates is not None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def host6(self) -> str:
        """The IPv6 loopback address, as clients put it in image names."""
        return f"[::1]:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    def _write_config(self, extra_http: str) -> None:
        conf = self.conf_dir
        conf.mkdir(parents=True, exist_ok=True)
        for name in ("logs", "tmp"):
            (self.workdir / name).mkdir(exist_ok=True)
        (conf / "dockyard").symlink_to(SHIPPED / "dockyard", target_is_directory=True)
        site = site_for_test(self.site.read_text(), self.upstream, self.port, self.ipv6, self.storage_root)
        (conf / "site.conf").write_text(site)
        if self.certificates is not None:
            (conf / "tls").mkdir()
            shutil.copyfile(self.certificates.server_cert, conf / "tls" / "registry.crt")
            shutil.copyfile(self.certificates.server_key, conf / "tls" / "registry.key")
        (conf / "nginx.conf").write_text(main_config(extra_http))

    def _command(self, *extra: str) -> list[str]:
        logs = self.workdir / "logs"
        return [
            nginx_binary(),
            "-p", f"{self.workdir}/",
            "-c", str(self.conf_dir / "nginx.conf"),
            "-e", str(logs / "error.log"),
            "-g", f"daemon off; pid {self.workdir / 'nginx.pid'}; error_log {logs / 'error.log'} info;",
            *extra,
        ]  # fmt: skip

    def check_config(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on this configuration."""
        return subprocess.run(self._command("-t"), capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> Nginx:
        self.process = ServerProcess(self._command(), self.workdir / "logs" / "nginx.out")
        self.process.wait_http(f"{self.url}/")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def log(self) -> str:
        """The error log (startup problems, upstream failures)."""
        path = self.workdir / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[str]:
        path = self.workdir / "logs" / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []
