"""The commands deploy/README.md gives operators, run as written, and the README sections the
shipped files point to."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

from cryptography import x509

from tests.support.registry import PROJECT

DEPLOY_README = PROJECT / "deploy" / "README.md"
POSIX_SH = shutil.which("dash") or "sh"
"""Debian's /bin/sh: no bash extensions, as on the servers operators paste these into."""


def shell_blocks(path: Path) -> list[str]:
    return [textwrap.dedent(block) for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.DOTALL)]


def run_sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSIX_SH, "-e", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_nginx_install_commands_upgrade_in_place(tmp_path: Path) -> None:
    """Run twice (an install, then an upgrade), the files land in /etc/nginx/dockyard/ both
    times and no folder is nested inside it."""
    server = next(block for block in shell_blocks(DEPLOY_README) if "/etc/nginx" in block)
    etc_nginx = tmp_path / "etc" / "nginx"
    (etc_nginx / "conf.d").mkdir(parents=True)  # what Debian's nginx package provides
    install = "\n".join(
        line.replace("/etc/nginx", str(etc_nginx))
        for line in server.splitlines()
        if "/etc/nginx" in line and line.startswith(("install", "cp"))
    )
    assert "deploy/nginx/dockyard" in install
    for _ in range(2):
        ran = run_sh(install, PROJECT)
        assert ran.returncode == 0, ran.stderr
    installed = sorted(str(p.relative_to(etc_nginx)) for p in etc_nginx.rglob("*") if p.is_file())
    shipped = sorted(f"dockyard/{p.name}" for p in (PROJECT / "deploy/nginx/dockyard").glob("*.conf"))
    assert installed == sorted([*shipped, "conf.d/dockyard.conf"])


def test_own_ca_commands_run_in_a_posix_shell(tmp_path: Path) -> None:
    ca_block = next(block for block in shell_blocks(DEPLOY_README) if "openssl req -x509" in block)
    ran = run_sh(ca_block, tmp_path)
    assert ran.returncode == 0, ran.stderr
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.crt", "-purpose", "sslserver", "registry.crt"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    certificate = x509.load_pem_x509_certificate((tmp_path / "registry.crt").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["registry.example.com"]


def test_readme_sections_named_by_shipped_files_exist() -> None:
    headings = set(re.findall(r"^#+ (.+)$", (PROJECT / "README.md").read_text(), re.MULTILINE))
    shipped = [PROJECT / "config.example.yml", *(p for p in (PROJECT / "deploy").rglob("*") if p.is_file())]
    references = [
        (path.relative_to(PROJECT), section)
        for path in shipped
        for section in re.findall(r'README\)?[ ,(]*"([^"]+)"', path.read_text(errors="replace"))
    ]
    assert references  # the sample config points to the access control section
    missing = [(str(path), section) for path, section in references if section not in headings]
    assert not missing, f"no such README section: {missing}"
