"""The ``dockyard`` command: ``serve`` the registry, ``check-config`` a configuration file (and the
auth and lifecycle commands their packages add)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import os
import secrets
import socket
import sys
from collections.abc import Iterator, Sequence

from auth import AuthConfigError, create_access_controller, create_token_server
from auth.cli import is_loopback
from auth.cli import register as register_auth_commands
from config_reader import parse_address
from offload import follow_callers
from storage_drivers import DriverConfigError, check_driver

from .config import CONFIG_ENV, SECRET_ENV, Config, ConfigError, load_config
from .cpus import usable_cpus
from .lifecycle.cli import register as register_lifecycle_commands
from .lifecycle.schedule import SCHEDULER_LOCK_ENV
from .logs import logging_config

log = logging.getLogger("registry")


def check(config: Config) -> list[str]:
    """Every problem that would stop the registry from starting with ``config``."""
    problems = []
    try:
        check_driver(config.storage.driver, config.storage.parameters)
    except DriverConfigError as exc:
        problems += exc.problems
    try:
        create_access_controller(config.auth)
    except AuthConfigError as exc:
        problems += exc.problems
    try:
        create_token_server(config.tokenserver, auth=config.auth, embedded=True)
    except AuthConfigError as exc:
        problems += exc.problems
    return problems


def _load(path: str | None) -> Config:
    config: Config | None
    problems: list[str] = []
    try:
        config = load_config(path)
    except ConfigError as exc:
        config, problems = exc.config, list(exc.problems)
    if config is not None:
        problems += check(config)  # the driver's and auth's problems too: one run lists them all
    if problems or config is None:
        print(f"dockyard: the configuration {path or 'embedded default'} cannot be used:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2)
    return config


def serve(args: argparse.Namespace) -> None:
    config = _load(args.config)
    # --addr is always HOST:PORT, also in place of a unix socket.
    socket_path = config.http.addr if config.http.net == "unix" and not args.addr else None
    host, port = "", 0
    if socket_path is None:
        try:
            host, port = parse_address(args.addr or config.http.addr)
        except ValueError as exc:
            raise SystemExit(f"dockyard: --addr: {exc}") from None
    logging.config.dictConfig(logging_config(config.log))
    for warning in config.warnings:
        log.warning("%s", warning)
    if config.auth is None and socket_path is None and not is_loopback(host):
        log.warning(
            "listening on %s without authentication: anyone who can reach this address can push "
            "and delete; configure auth (see README) or listen on 127.0.0.1",
            host,
        )
    os.environ[CONFIG_ENV] = os.path.abspath(args.config) if args.config else ""
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(32))
    if args.workers is not None and args.workers < 1:
        raise SystemExit("dockyard: --workers must be at least 1")
    workers, chosen_by = worker_count(args.workers, config)
    # Set before the workers are forked: each inherits it.
    follow = calls_follow_loops(workers, config) and follow_callers()
    sock = _listen(host, port) if socket_path is None else _listen_unix(socket_path)
    sockets = [sock]
    if config.http.debug.addr is not None:
        debug_host, debug_port = parse_address(config.http.debug.addr)
        sockets.append(_listen(debug_host, debug_port))
        log.info("debug listener (metrics, health) on %s:%d", debug_host, debug_port)
    log.info(
        "serving %s storage on %s with %d workers (%s)%s",
        config.storage.driver,
        socket_path or f"{host}:{port}",
        workers,
        chosen_by,
        ", each one's short calls on its event loop's CPU" if follow else "",
    )

    from .observability.workers import shared_metrics  # noqa: PLC0415 - serving only
    from .supervisor import limit_malloc_arenas, supervise  # noqa: PLC0415

    def run_worker(sock: socket.socket) -> None:
        import uvicorn  # noqa: PLC0415 - the workers' imports; the supervisor stays small

        from .draining import DrainingServer  # noqa: PLC0415
        from .zerocopy import ZeroCopyHTTPProtocol  # noqa: PLC0415 - imports uvicorn

        server = DrainingServer(
            uvicorn.Config(
                "registry.app:app_from_environment",
                factory=True,
                http=ZeroCopyHTTPProtocol,
                loop="uvloop" if sys.platform != "win32" else "asyncio",
                log_config=None,  # configured above, inherited
                access_log=False,  # the registry's own access log (registry.access) replaces it
                server_header=False,
                proxy_headers=False,  # the application applies http.trustedproxies itself
            ),
            drain_timeout=config.http.drain_timeout,
        )
        server.run(sockets=sockets)

    # One worker keeps its metrics in its own memory: only forked workers need the shared files.
    shared = config.http.debug.prometheus and workers > 1
    with shared_metrics() if shared else contextlib.nullcontext(), _scheduler_lock():
        try:
            if workers == 1:
                limit_malloc_arenas()
                run_worker(sock)
            else:
                supervise(workers, run_worker, sock, config.http.drain_timeout)
        finally:
            if socket_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(socket_path)


@contextlib.contextmanager
def _scheduler_lock() -> Iterator[None]:
    """A lock of this server's own, through which its workers choose the one that runs the
    maintenance schedule (``registry.lifecycle.schedule``): an anonymous in-memory file whose
    descriptor the forked workers inherit and each open anew through ``/proc/self/fd`` (a lock
    of its own to take). It is named in no directory, so a server killed outright leaves
    nothing behind."""
    fd = os.memfd_create("dockyard-scheduler")  # close-on-exec: only the forked workers have it
    os.environ[SCHEDULER_LOCK_ENV] = f"/proc/self/fd/{fd}"
    try:
        yield
    finally:
        os.close(fd)


def worker_count(option: int | None, config: Config) -> tuple[int, str]:
    """How many workers to run and what chose that number: ``--workers``, then ``http.workers``,
    then one per CPU the process may use."""
    if option is not None:
        return option, "--workers"
    if config.http.workers is not None:
        return config.http.workers, "http.workers"
    return usable_cpus(), "one per usable CPU"


def calls_follow_loops(workers: int, config: Config) -> bool:
    """Whether each worker's short calls run on its event loop's CPU (``http.loopaffinity``): only
    with one worker per CPU the process may run on. With fewer, a busy worker's calls would wait
    for its event loop's CPU while another CPU has time for them."""
    return config.http.loop_affinity and 2 <= workers == len(os.sched_getaffinity(0))


def _listen(host: str, port: int) -> socket.socket:
    from .supervisor import bind  # noqa: PLC0415 - serving only: the other commands start faster

    try:
        return bind(host, port)
    except OSError as exc:
        raise SystemExit(f"dockyard: cannot listen on {host}:{port}: {exc.strerror}") from None


def _listen_unix(path: str) -> socket.socket:
    from .supervisor import bind_unix  # noqa: PLC0415

    try:
        return bind_unix(path)
    except OSError as exc:
        raise SystemExit(f"dockyard: cannot listen on {path}: {exc.strerror}") from None


def check_config(args: argparse.Namespace) -> None:
    config = _load(args.config)
    for warning in config.warnings:
        print(f"warning: {warning}")
    print(f"{config.source}: OK ({config.storage.driver} storage)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dockyard", description="A container image registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the registry")
    serve_parser.add_argument("config", nargs="?", help="config.yml (default: the embedded default)")
    serve_parser.add_argument("--addr", help="HOST:PORT to listen on (overrides http.addr)")
    serve_parser.add_argument(
        "--workers", type=int, help="worker processes (overrides http.workers; default: one per usable CPU)"
    )
    serve_parser.set_defaults(run=serve)
    check_parser = commands.add_parser("check-config", help="validate a config file, listing every problem")
    check_parser.add_argument("config")
    check_parser.set_defaults(run=check_config)
    register_auth_commands(commands)  # token-server, generate-token-key, htpasswd
    register_lifecycle_commands(commands, _load)  # garbage-collect, delete-repository
    args = parser.parse_args(argv)
    args.run(args)
