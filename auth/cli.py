"""Command-line entry points for authentication: run the token server alone, make its key,
manage htpasswd users.

``register(subparsers)`` adds them to the ``dockyard`` command; ``python -m auth`` runs them too.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from .htpasswd_edit import remove_user, set_password
from .keygen import ALGORITHMS, generate_token_key
from .section import AuthConfigError
from .tokenserver import create_token_server, standalone_app


def register(subparsers: Any) -> None:
    """Add ``token-server``, ``generate-token-key`` and ``htpasswd`` to an argparse subparsers."""
    server = subparsers.add_parser(
        "token-server", help="run the built-in token server alone (the `tokenserver` section)"
    )
    server.add_argument("config", type=Path, help="config.yml with a tokenserver section")
    server.add_argument("--addr", help="HOST:PORT to listen on (default: tokenserver.addr)")
    server.set_defaults(run=run_token_server)

    keys = subparsers.add_parser(
        "generate-token-key", help="create token.key and token.crt for the token server"
    )
    keys.add_argument("directory", type=Path)
    keys.add_argument("--algorithm", choices=ALGORITHMS, default="ES256")
    keys.add_argument("--force", action="store_true", help="replace existing files")
    keys.set_defaults(run=run_generate_token_key)

    users = subparsers.add_parser("htpasswd", help="add, change or remove an htpasswd user")
    users.add_argument("file", type=Path)
    users.add_argument("username")
    users.add_argument("--delete", action="store_true", help="remove the user")
    users.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.set_defaults(run=run_htpasswd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auth", description=__doc__)
    register(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


def split_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, separator, port = addr.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"{addr!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all


def run_token_server(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = yaml.safe_load(args.config.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        print(f"cannot read {args.config}: {error}", file=sys.stderr)
        return 2
    try:
        server = create_token_server(config, embedded=False)
    except AuthConfigError as error:
        print("invalid configuration:", *error.problems, sep="\n  ", file=sys.stderr)
        return 2
    if server is None:
        print(f"{args.config} has no tokenserver section", file=sys.stderr)
        return 2
    settings = server.settings
    try:
        host, port = split_addr(args.addr or settings.addr)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    uvicorn.run(
        standalone_app(server),
        host=host,
        port=port,
        ssl_certfile=settings.tls_certificate,
        ssl_keyfile=settings.tls_key,
        log_level="info",
        server_header=False,
    )
    return 0


def run_generate_token_key(args: argparse.Namespace) -> int:
    try:
        generated = generate_token_key(args.directory, args.algorithm, overwrite=args.force)
    except FileExistsError as error:
        print(f"{error} (use --force to replace it: every issued token stops working)")
        return 1
    print(f"private key: {generated.key_path}  (tokenserver.signingkey; keep it secret)")
    print(f"certificate: {generated.certificate_path}")
    print("             (tokenserver.certificate and auth.token.rootcertbundle)")
    print(f"key id:      {generated.key_id}")
    return 0


def run_htpasswd(args: argparse.Namespace) -> int:
    if args.delete:
        if remove_user(args.file, args.username):
            print(f"removed {args.username}")
            return 0
        print(f"{args.username} is not in {args.file}", file=sys.stderr)
        return 1
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    try:
        set_password(args.file, args.username, password)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{args.username} saved in {args.file}")
    return 0
