"""``proxy``: the upstream registries mirrored, in Distribution's form or the registry's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from config_reader import Section

from ..references import is_repository_name
from .base import SectionParser


@dataclass(frozen=True)
class Upstream:
    """A registry mirrored under ``prefix`` (empty: the whole registry mirrors it)."""

    remote_url: str
    prefix: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ttl: float = 168 * 3600.0
    """Seconds cached content lives after its last use; 0 keeps it."""
    revalidate: float = 60.0
    """Seconds a manifest pulled by tag is served before the upstream is asked again."""
    cacerts: Path | None = None


class ProxyParser(SectionParser):
    """Reads ``proxy``."""

    def _proxy(self) -> tuple[Upstream, ...]:
        """Distribution's form (``remoteurl`` at the top: the whole registry mirrors one upstream)
        or the registry's own (``upstreams``: each mirrored under a name prefix)."""
        proxy = self.root.section("proxy")
        if "remoteurl" in proxy and "upstreams" in proxy:
            proxy.problem("upstreams", "give either remoteurl (one upstream) or upstreams, not both")
            return ()
        if "remoteurl" in proxy:
            proxy.warn_unknown(UPSTREAM_KEYS - {"prefix"})
            upstream = self._upstream(proxy, prefix="")
            return (upstream,) if upstream else ()
        proxy.warn_unknown({"upstreams"})
        upstreams: list[Upstream] = []
        for entry in proxy.section_list("upstreams"):
            entry.reject_unknown(UPSTREAM_KEYS)
            prefix = entry.string("prefix", required=True)
            if prefix and not is_repository_name(prefix):
                entry.problem("prefix", f"{prefix!r} is not a repository name such as dockerhub")
                continue
            clash = next((u.prefix for u in upstreams if _nested(u.prefix, prefix)), None)
            if clash is not None:
                entry.problem("prefix", f"{prefix!r} overlaps the prefix {clash!r}")
                continue
            upstream = self._upstream(entry, prefix)
            if upstream and prefix:
                upstreams.append(upstream)
        return tuple(upstreams)

    @staticmethod
    def _upstream(section: Section, prefix: str) -> Upstream | None:
        if not section.given("remoteurl"):
            section.problem("remoteurl", "required")
            return None
        url = section.url("remoteurl")
        if not url:
            return None
        if "@" in urlsplit(url).netloc:
            section.problem("remoteurl", "must not hold credentials (use username and password)")
            return None
        username = section.string("username")
        password = section.string("password")
        if bool(username) != bool(password):
            section.problem("password" if username else "username", "username and password go together")
        defaults = Upstream(url)
        return Upstream(
            remote_url=url.rstrip("/"),
            prefix=prefix,
            username=username,
            password=password,
            ttl=section.duration("ttl", default=defaults.ttl),
            revalidate=section.duration("revalidate", default=defaults.revalidate),
            cacerts=section.existing_file("cacerts"),
        )


UPSTREAM_KEYS = frozenset({"prefix", "remoteurl", "username", "password", "ttl", "revalidate", "cacerts"})


def _nested(a: str, b: str) -> bool:
    """Whether one prefix names a repository under (or equal to) the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
