"""``dockyard garbage-collect``, ``dockyard delete-repository`` and ``dockyard usage``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging.config
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from config_reader import parse_duration
from storage_drivers import StorageDriver, StorageError, create_driver

from ..config import Config
from ..cpus import usable_cpus
from ..errors import RegistryError
from ..logs import logging_config
from ..references import RepositoryName
from .collect import Options
from .lease import LeaseBusy, LeaseLost
from .repositories import delete_repository
from .usage import collect_and_record, measure

LoadConfig = Callable[[str | None], Config]

CLI_WAIT = 60.0
"""How long ``delete-repository`` waits for a running garbage collection."""


def register(commands: Any, load: LoadConfig) -> None:
    """Add the lifecycle commands to the ``dockyard`` subcommands; ``load`` reads a config file."""
    collect = commands.add_parser("garbage-collect", help="delete blobs and manifests nothing refers to")
    collect.add_argument("config", help="config.yml (its storage section)")
    collect.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
    collect.add_argument("--delete-untagged", action="store_true", help="also delete manifests no tag keeps")
    collect.add_argument(
        "--grace-period",
        type=_duration,
        metavar="DURATION",
        help="keep content written more recently than this (default: the configured "
        "storage.maintenance.garbagecollect.graceperiod, else 1h; 0s keeps nothing extra)",
    )
    collect.add_argument(
        "--retention",
        action="store_true",
        help="first untag what the storage.maintenance.retention rules do not keep",
    )
    collect.add_argument("--quiet", action="store_true", help="do not print each item, only the summary")
    collect.add_argument("--workers", type=_workers, help=WORKERS_HELP)
    collect.set_defaults(run=lambda args: _garbage_collect(load(args.config), args))

    delete = commands.add_parser(
        "delete-repository", help="delete repositories; their blobs go at the next GC"
    )
    delete.add_argument("config", help="config.yml (its storage section)")
    delete.add_argument("names", nargs="+", metavar="NAME")
    delete.set_defaults(run=lambda args: _delete_repositories(load(args.config), args))

    usage = commands.add_parser(
        "usage", help="bytes per repository (referenced, and only it references), tags, manifests"
    )
    usage.add_argument("config", help="config.yml (its storage section)")
    usage.add_argument("--json", action="store_true", help="print the usage record's JSON object")
    usage.add_argument("--workers", type=_workers, help=WORKERS_HELP)
    usage.set_defaults(run=lambda args: _usage(load(args.config), args))


WORKERS_HELP = "processes that scan a filesystem store (default: one per usable CPU)"


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise argparse.ArgumentTypeError(f"not a number of processes: {value!r}")
    return workers


def _duration(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _refuse_read_only(config: Config, what: str) -> None:
    if config.storage.read_only:
        raise SystemExit(
            f"dockyard: {what} is disabled: the storage is in read-only mode "
            "(storage.maintenance.readonly.enabled)"
        )


def _run(config: Config, work: Callable[[StorageDriver], Awaitable[None]]) -> None:
    logging.config.dictConfig(logging_config(config.log))
    driver = create_driver(config.storage.driver, config.storage.parameters)
    # A run builds hundreds of thousands of small objects that live until it ends (the
    # inventory, the record of references) and makes few cycles: at the default thresholds the
    # cyclic collector traversed them some 400 times, a tenth of a dry run's CPU. What was
    # imported is frozen out of its passes, and a pass comes every 500,000 allocations, not
    # 700: each pass traverses every object allocated since the last, which nearly all live on.
    gc.freeze()
    gc.set_threshold(500_000, 10, 10)

    async def main() -> None:
        try:
            await work(driver)
        finally:
            await driver.close()

    try:
        asyncio.run(main())
    except LeaseBusy as exc:
        raise SystemExit(f"dockyard: another maintenance run holds the lease: {exc}") from None
    except LeaseLost as exc:
        raise SystemExit(f"dockyard: {exc}; stopped before deleting anything more") from None
    except StorageError as exc:
        raise SystemExit(f"dockyard: the storage failed; nothing more was changed: {exc}") from None


def _garbage_collect(config: Config, args: argparse.Namespace) -> None:
    _refuse_read_only(config, "retention" if args.retention else "garbage collection")
    if args.retention and not config.storage.retention:
        raise SystemExit(
            f"dockyard: --retention: {config.source} has no rules (storage.maintenance.retention)"
        )
    retention = config.storage.retention if args.retention else ()
    grace_period = args.grace_period
    if grace_period is None:
        grace_period = config.storage.garbage_collect.grace_period
    workers = args.workers or usable_cpus()
    options = Options(args.dry_run, args.delete_untagged, grace_period, retention, workers)

    pending: list[str] = []

    def emit(line: str) -> None:
        if not args.quiet:
            pending.append(line)
            if len(pending) >= PRINT_BATCH:
                _print_lines(pending)

    async def work(driver: StorageDriver) -> None:
        try:
            await collect_and_record(driver, options, emit)
        finally:
            _print_lines(pending)

    _run(config, work)


PRINT_BATCH = 1024
"""Lines of a run's items written at once: a write each costs where Python's output is
unbuffered (``PYTHONUNBUFFERED``, as many container images set it)."""


def _print_lines(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        lines.clear()


def _delete_repositories(config: Config, args: argparse.Namespace) -> None:
    _refuse_read_only(config, "repository deletion")
    try:
        names = [RepositoryName.parse(name) for name in args.names]
    except RegistryError as exc:
        raise SystemExit(f"dockyard: {exc.detail}: not a repository name") from None
    failed = []

    async def work(driver: StorageDriver) -> None:
        for name in names:
            try:
                await delete_repository(driver, name, CLI_WAIT)
            except RegistryError as exc:
                failed.append(name)
                print(f"{name}: {exc.code.message}", file=sys.stderr)
            else:
                print(f"{name}: deleted")

    _run(config, work)
    if failed:
        raise SystemExit(1)


def _usage(config: Config, args: argparse.Namespace) -> None:
    record = not config.storage.read_only

    async def work(driver: StorageDriver) -> None:
        usage = await measure(driver, record, args.workers or usable_cpus())
        if args.json:
            print(json.dumps(usage.document(), indent=2, sort_keys=True))
        else:
            for line in usage.lines():
                print(line)
        if not record:
            print("dockyard: read-only mode: the usage record was not updated", file=sys.stderr)

    _run(config, work)
