"""``notifications``: the endpoints events are sent to, and their queues."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .base import SectionParser

EVENTS_V2 = "application/vnd.docker.distribution.events.v2+json"
EVENTS_V1 = "application/vnd.docker.distribution.events.v1+json"
"""The envelope's media type: Distribution 3 sends v2; 2.8 sent the same shape as v1."""


@dataclass(frozen=True)
class Endpoint:
    """One ``notifications.endpoints`` entry; ``max_events`` and ``max_bytes`` bound its queue."""

    name: str
    url: str
    headers: dict[str, list[str]] = field(default_factory=dict, repr=False)
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignored_media_types: frozenset[str] = frozenset()
    ignored_actions: frozenset[str] = frozenset()
    media_type: str = EVENTS_V2
    max_events: int = 10_000
    max_bytes: int = 64 << 20


@dataclass(frozen=True)
class NotificationsConfig:
    endpoints: tuple[Endpoint, ...] = ()
    """The enabled endpoints only."""
    include_references: bool = False
    directory: str | None = None
    """A local directory holding the queues; None: the registry's storage."""


class NotificationsParser(SectionParser):
    """Reads ``notifications``."""

    def _notifications(self) -> NotificationsConfig:
        """Distribution's section unchanged, plus the registry's queue keys: ``queue.directory``
        and the default bounds ``queue.maxevents`` / ``queue.maxbytes``, which an endpoint's own
        ``maxevents`` / ``maxbytes`` override, and an endpoint's ``mediatype`` (v1 for receivers
        written for Distribution 2.8)."""
        section = self.root.section("notifications")
        section.warn_unknown({"endpoints", "events", "queue"})
        events = section.section("events")
        events.warn_unknown({"includereferences"})
        queue = section.section("queue")
        queue.reject_unknown({"directory", "maxevents", "maxbytes"})
        directory = queue.string("directory") or None
        if directory is not None and not Path(directory).is_dir():
            queue.problem("directory", f"{directory}: no such directory")
        defaults = Endpoint("", "")
        max_events = queue.integer("maxevents", default=defaults.max_events, minimum=1)
        max_bytes = queue.integer("maxbytes", default=defaults.max_bytes, minimum=1)
        endpoints: list[Endpoint] = []
        for entry in section.section_list("endpoints"):
            entry.warn_unknown(ENDPOINT_KEYS)
            name = entry.string("name", required=True)
            if not entry.given("url"):
                entry.problem("url", "required")
            url = entry.url("url")
            ignore = entry.section("ignore")
            ignore.warn_unknown({"mediatypes", "actions"})
            actions = ignore.string_list("actions")
            for action in actions:
                if action not in EVENT_ACTIONS:
                    ignore.problem("actions", f"{action!r} is not one of {', '.join(EVENT_ACTIONS)}")
            if any(e.name == name for e in endpoints):
                entry.problem("name", f"{name!r} names another endpoint too")
            endpoint = Endpoint(
                name=name,
                url=url or "",
                headers=entry.string_lists("headers"),
                timeout=entry.duration("timeout", default=defaults.timeout, minimum=0.001),
                threshold=entry.integer("threshold", default=defaults.threshold, minimum=0),
                backoff=entry.duration("backoff", default=defaults.backoff),
                ignored_media_types=frozenset(
                    entry.string_list("ignoredmediatypes") + ignore.string_list("mediatypes")
                ),
                ignored_actions=frozenset(actions),
                media_type=entry.choice("mediatype", (EVENTS_V2, EVENTS_V1), default=EVENTS_V2),
                max_events=entry.integer("maxevents", default=max_events, minimum=1),
                max_bytes=entry.integer("maxbytes", default=max_bytes, minimum=1),
            )
            if name and url and not entry.flag("disabled"):
                endpoints.append(endpoint)
        return NotificationsConfig(
            endpoints=tuple(endpoints),
            include_references=events.flag("includereferences"),
            directory=directory,
        )


ENDPOINT_KEYS = frozenset({
    "name", "disabled", "url", "headers", "timeout", "threshold", "backoff", "ignoredmediatypes",
    "ignore", "mediatype", "maxevents", "maxbytes",
})  # fmt: skip
EVENT_ACTIONS = ("push", "pull", "delete", "mount")
