"""``storage``: the driver and its parameters, deletes, redirects, maintenance and the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config_reader import Section
from storage_drivers import DRIVERS

from ..lifecycle.policy import Keep, RetentionRule, repository_glob, tag_glob
from .base import SectionParser

STORAGE_OPTIONS = ("delete", "maintenance", "redirect", "cache", "tag")


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dry_run: bool = False


@dataclass(frozen=True)
class GarbageCollect:
    """``storage.maintenance.garbagecollect``: the server's scheduled online collection."""

    enabled: bool = False
    interval: float = 24 * 3600.0
    grace_period: float = 3600.0
    """Also the default of ``dockyard garbage-collect --grace-period``."""
    delete_untagged: bool = False


@dataclass(frozen=True)
class DescriptorCacheConfig:
    """``storage.cache.blobdescriptor: inmemory``: each worker keeps what it read of which
    repository holds which blob and manifest (``registry/storage/descriptors.py``)."""

    size: int = 10_000
    """``blobdescriptorsize``: entries per worker; 0 bounds them by the expiry alone."""
    expiry: float = 5.0
    """``blobdescriptorexpiry`` (Dockyard's key): seconds an entry is believed, so the longest a
    delete made through another worker or replica goes unseen."""


@dataclass(frozen=True)
class StorageConfig:
    driver: str = "filesystem"
    parameters: dict[str, Any] = field(default_factory=dict)
    delete_enabled: bool = False
    redirect: bool = True
    read_only: bool = False
    upload_purging: UploadPurging = field(default_factory=UploadPurging)
    retention: tuple[RetentionRule, ...] = ()
    """``storage.maintenance.retention``: ordered, the first rule covering a repository applies."""
    pull_records_interval: float = 60.0
    """``storage.maintenance.pullrecords.flushinterval``: how often a worker writes pull times."""
    garbage_collect: GarbageCollect = field(default_factory=GarbageCollect)
    descriptor_cache: DescriptorCacheConfig | None = None
    """None: every read asks the storage (no ``storage.cache.blobdescriptor``)."""


class StorageParser(SectionParser):
    """Reads ``storage``."""

    def _storage(self) -> StorageConfig:
        if "storage" not in self.root:
            self.problems.append("storage: required (e.g. storage.filesystem.rootdirectory)")
            return StorageConfig()
        storage = self.root.section("storage")
        supported = ", ".join(DRIVERS)
        drivers = [k for k in storage if k not in STORAGE_OPTIONS]
        if len(drivers) != 1:
            self.problems.append(
                f"storage: configure exactly one driver (found {', '.join(drivers) or 'none'}; "
                f"supported: {supported})"
            )
            return StorageConfig()
        driver = drivers[0]
        if driver not in DRIVERS:
            storage.problem(driver, f"unsupported driver (supported: {supported})")
        parameters = storage.section(driver).values
        delete = storage.section("delete")
        redirect = storage.section("redirect")
        maintenance = storage.section("maintenance")
        purging = maintenance.section("uploadpurging")
        readonly = maintenance.section("readonly")
        maintenance.warn_unknown({"uploadpurging", "readonly", "retention", "pullrecords", "garbagecollect"})
        storage.warn_unknown({driver, "delete", "redirect", "maintenance", "cache"})
        defaults = UploadPurging()
        upload_purging = UploadPurging(
            enabled=purging.flag("enabled", default=defaults.enabled),
            age=purging.duration("age", default=defaults.age),
            interval=purging.duration("interval", default=defaults.interval),
            dry_run=purging.flag("dryrun", default=defaults.dry_run),
        )
        if upload_purging.interval <= 0:
            purging.problem("interval", "must be positive")
        return StorageConfig(
            driver=driver,
            parameters=dict(parameters),
            delete_enabled=delete.flag("enabled"),
            redirect=not redirect.flag("disable"),
            read_only=readonly.flag("enabled"),
            upload_purging=upload_purging,
            retention=self._retention(maintenance),
            pull_records_interval=self._pull_records(maintenance.section("pullrecords")),
            garbage_collect=self._garbage_collect(maintenance.section("garbagecollect")),
            descriptor_cache=self._descriptor_cache(storage.section("cache")),
        )

    @staticmethod
    def _descriptor_cache(cache: Section) -> DescriptorCacheConfig | None:
        cache.warn_unknown({"blobdescriptor", "layerinfo", "blobdescriptorsize", "blobdescriptorexpiry"})
        key = "blobdescriptor" if cache.given("blobdescriptor") else "layerinfo"  # its former name
        kind = cache.string(key).strip()
        if kind.lower() != "inmemory":
            if kind:  # redis, or a name Distribution does not know either: no cache, as there
                cache.unsupported.append(f"{cache.where(key)}: {kind}")
            return None
        defaults = DescriptorCacheConfig()
        return DescriptorCacheConfig(
            size=cache.integer("blobdescriptorsize", default=defaults.size, minimum=0),
            expiry=cache.duration("blobdescriptorexpiry", default=defaults.expiry, minimum=0.001),
        )

    @staticmethod
    def _garbage_collect(section: Section) -> GarbageCollect:
        section.reject_unknown({"enabled", "interval", "graceperiod", "deleteuntagged"})  # our own key
        defaults = GarbageCollect()
        return GarbageCollect(
            enabled=section.flag("enabled", default=defaults.enabled),
            interval=section.duration("interval", default=defaults.interval, minimum=1.0),
            grace_period=section.duration("graceperiod", default=defaults.grace_period),
            delete_untagged=section.flag("deleteuntagged", default=defaults.delete_untagged),
        )

    @staticmethod
    def _pull_records(section: Section) -> float:
        section.reject_unknown({"flushinterval"})
        return section.duration("flushinterval", default=StorageConfig.pull_records_interval, minimum=0.001)

    @staticmethod
    def _retention(maintenance: Section) -> tuple[RetentionRule, ...]:
        rules = []
        for entry in maintenance.section_list("retention"):
            entry.reject_unknown({"repositories", "keep"})
            globs = entry.string_list("repositories")
            if not globs:
                entry.problem("repositories", "required: one or more repository globs such as ci/**")
            for pattern in globs:
                try:
                    repository_glob(pattern)
                except ValueError as exc:
                    entry.problem("repositories", str(exc))
            keep = entry.section("keep")
            keep.reject_unknown({"newest", "pushedwithin", "pulledwithin", "tags"})
            clauses = [key for key in ("newest", "pushedwithin", "pulledwithin", "tags") if keep.given(key)]
            if not clauses:
                entry.problem("keep", "required: at least one of newest, pushedwithin, pulledwithin, tags")
            patterns = keep.string_list("tags")
            for pattern in patterns:
                try:
                    tag_glob(pattern)
                except ValueError as exc:
                    keep.problem("tags", str(exc))
            newest = keep.integer("newest", default=0, minimum=0) if keep.given("newest") else None
            windows = [
                keep.duration(key, default=0.0) if keep.given(key) else None
                for key in ("pushedwithin", "pulledwithin")
            ]
            rules.append(RetentionRule(tuple(globs), Keep(newest, windows[0], windows[1], tuple(patterns))))
        return tuple(rules)
