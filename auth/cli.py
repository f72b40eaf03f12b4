"""Command-line entry points for authentication: run the token server alone, make its key,
manage htpasswd users.

``register(subparsers)`` adds them to the ``dockyard`` command; ``python -m auth`` runs them too.
Each command imports what it needs when it runs, so registering them costs the ``dockyard
serve`` supervisor process nothing.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from config_reader import parse_address

from .section import AuthConfigError


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
    keys.add_argument("--algorithm", default="ES256", help="ES256 (default) or RS256")
    keys.add_argument("--force", action="store_true", help="replace existing files")
    keys.set_defaults(run=run_generate_token_key)

    users = subparsers.add_parser("htpasswd", help="add, change or remove an htpasswd user")
    users.add_argument("file", type=Path)
    users.add_argument("username")
    users.add_argument("--delete", action="store_true", help="remove the user")
    users.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.set_defaults(run=run_htpasswd)


def main(argv: Sequence[str] | None = None) -> None:
    """Each command returns on success and raises SystemExit with a non-zero status on failure."""
    parser = argparse.ArgumentParser(prog="python -m auth", description=__doc__)
    register(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    args.run(args)


def fail(message: str, status: int = 1) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(status)


def run_token_server(args: argparse.Namespace) -> None:
    import uvicorn

    from .tokenserver import create_token_server, standalone_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = yaml.safe_load(args.config.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        fail(f"cannot read {args.config}: {error}", 2)
    if not isinstance(config, dict):
        fail(f"{args.config}: not a YAML mapping", 2)
    try:
        server = create_token_server(config.get("tokenserver"), auth=config.get("auth"), embedded=False)
    except AuthConfigError as error:
        fail("\n  ".join(["invalid configuration:", *error.problems]), 2)
    if server is None:
        fail(f"{args.config} has no tokenserver section", 2)
    settings = server.settings
    try:
        host, port = parse_address(args.addr or settings.addr)
    except ValueError as error:
        fail(str(error), 2)
    if settings.tls_certificate is None and not is_loopback(host):
        logging.getLogger("dockyard.auth").warning(
            "token server on %s without tls: passwords cross the network in clear text", host
        )
    uvicorn.run(
        standalone_app(server),
        host=host,
        port=port,
        ssl_certfile=settings.tls_certificate,
        ssl_keyfile=settings.tls_key,
        log_level="info",
        server_header=False,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_generate_token_key(args: argparse.Namespace) -> None:
    from .keygen import generate_token_key

    try:
        generated = generate_token_key(args.directory, args.algorithm, overwrite=args.force)
    except FileExistsError as error:
        fail(f"{error} (use --force to replace it: every issued token stops working)")
    except ValueError as error:
        fail(str(error), 2)
    print(f"private key: {generated.key_path}  (tokenserver.signingkey; keep it secret)")
    print(f"certificate: {generated.certificate_path}")
    print("             (tokenserver.certificate and auth.token.rootcertbundle)")
    print(f"key id:      {generated.key_id}")


def run_htpasswd(args: argparse.Namespace) -> None:
    from .htpasswd_edit import remove_user, set_password

    if args.delete:
        if not remove_user(args.file, args.username):
            fail(f"{args.username} is not in {args.file}")
        print(f"removed {args.username}")
        return
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            fail("the passwords differ")
    try:
        set_password(args.file, args.username, password)
    except ValueError as error:
        fail(str(error))
    print(f"{args.username} saved in {args.file}")
