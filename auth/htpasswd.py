"""Users from an Apache htpasswd file (bcrypt entries only) and the Basic-auth access controller.

The file is re-read when it changes (checked at most once a second, by inode, size and mtime),
so adding or removing a user needs no restart. bcrypt runs in worker threads, a small number at a
time, and a successful check is remembered briefly so a client's burst of requests pays it once.
An unknown user costs one bcrypt against a dummy hash, exactly like a wrong password.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import bcrypt

from offload import to_bulk_thread, to_thread

from .base import Access, AccessController, Challenge, Grant
from .credentials import basic_credentials, challenge
from .section import Section

log = logging.getLogger("dockyard.auth")

BCRYPT_ENTRY = re.compile(rb"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
BCRYPT_MAX_PASSWORD = 72
"""bcrypt reads 72 bytes; longer passwords are truncated, as Apache htpasswd and Go's bcrypt do."""
DEFAULT_COST = 10
STAT_INTERVAL = 1.0
"""Seconds between checks whether the file changed."""
CACHE_SECONDS = 120.0
CACHE_ENTRIES = 4096
BCRYPT_THREADS = 4
"""At most this many bcrypt checks run at once, so a password-guessing flood cannot take every
worker thread the registry needs for storage."""


@dataclass(frozen=True, slots=True)
class Entries:
    """One parsed version of the file."""

    hashes: Mapping[str, bytes]
    dummy: bytes
    """A bcrypt hash of a random password, at the file's usual cost, checked for unknown users."""


def parse_htpasswd(text: str, source: str) -> tuple[dict[str, bytes], list[str]]:
    """``user -> bcrypt hash`` and a problem per unusable line (no hash ever appears in one)."""
    hashes: dict[str, bytes] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, separator, hashed = line.partition(":")
        if not separator or not user:
            problems.append(f"{source}: line {number}: expected user:bcrypt-hash")
            continue
        if not BCRYPT_ENTRY.match(hashed.strip().encode("ascii", "replace")):
            problems.append(
                f"{source}: line {number} (user {user!r}): only bcrypt entries ($2y$, $2b$, $2a$)"
                " are supported; create them with `htpasswd -B`"
            )
            continue
        if user in hashes:
            problems.append(f"{source}: line {number}: user {user!r} appears twice")
            continue
        hashes[user] = hashed.strip().encode("ascii")
    return hashes, problems


def usual_cost(hashes: Mapping[str, bytes]) -> int:
    costs = Counter(int(hashed[4:6]) for hashed in hashes.values())
    return costs.most_common(1)[0][0] if costs else DEFAULT_COST


def make_entries(hashes: Mapping[str, bytes]) -> Entries:
    """Entries with a dummy hash; costs one bcrypt hash, so call it in a thread when serving."""
    salt = bcrypt.gensalt(usual_cost(hashes))
    return Entries(dict(hashes), bcrypt.hashpw(secrets.token_bytes(32), salt))


@dataclass(slots=True)
class _Pending:
    """A bcrypt check in flight, shared by concurrent requests with the same credentials."""

    done: anyio.Event = field(default_factory=anyio.Event)
    result: bool | None = None
    """None if the check was abandoned (its request cancelled): each waiter checks for itself."""


@dataclass(frozen=True, slots=True)
class _Cached:
    expires: float
    hashed: bytes


class HtpasswdUsers:
    """The users of one htpasswd file; ``verify`` checks a password."""

    def __init__(self, path: Path, entries: Entries, signature: tuple[int, int, int]) -> None:
        self.path = path
        self._entries = entries
        self._signature = signature
        self._next_stat = time.monotonic() + STAT_INTERVAL
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._pending: dict[bytes, _Pending] = {}
        self._limiter: anyio.CapacityLimiter | None = None

    @classmethod
    def load(cls, path: Path, problems: list[str], key: str) -> HtpasswdUsers | None:
        """Read the file at start-up; every unusable line is a problem (reported under ``key``)."""
        try:
            signature = _signature(path)
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            problems.append(f"{key}: cannot read {path}: {error.strerror or error}")
            return None
        except UnicodeDecodeError:
            problems.append(f"{key}: {path} is not UTF-8 text")
            return None
        hashes, file_problems = parse_htpasswd(text, str(path))
        problems.extend(f"{key}: {problem}" for problem in file_problems)
        if file_problems:
            return None
        if not hashes:
            log.warning("%s has no users yet: every login fails until one is added", path)
        return cls(path, make_entries(hashes), signature)

    async def current(self) -> Entries:
        """The entries, re-read first if the file changed since the last look."""
        now = time.monotonic()
        if now >= self._next_stat:
            self._next_stat = now + STAT_INTERVAL
            await to_thread(self._reload_if_changed)
        return self._entries

    def _reload_if_changed(self) -> None:
        try:
            signature = _signature(self.path)
        except OSError as error:
            if self._entries.hashes:
                log.error("htpasswd file %s unreadable (%s): nobody can log in", self.path, error)
            self._entries = Entries({}, self._entries.dummy)
            self._signature = (0, 0, 0)
            return
        if signature == self._signature:
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            log.error("htpasswd file %s unreadable (%s): nobody can log in", self.path, error)
            self._entries = Entries({}, self._entries.dummy)
            return
        hashes, problems = parse_htpasswd(text, str(self.path))
        for problem in problems:  # the other users keep working; these lines are skipped
            log.error("htpasswd reload: %s", problem)
        self._entries = make_entries(hashes)
        self._signature = signature
        log.info("htpasswd file %s reloaded: %d users", self.path, len(hashes))

    async def entry(self, username: str) -> bytes | None:
        """The user's current bcrypt hash (for binding refresh tokens to it), None if unknown."""
        return (await self.current()).hashes.get(username)

    async def verify(self, username: str, password: str) -> bool:
        entries = await self.current()
        hashed = entries.hashes.get(username)
        key = hmac.new(self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256).digest()
        if hashed is not None and self._cached(key, hashed):
            return True
        pending = self._pending.get(key)
        if pending is not None:
            await pending.done.wait()
            if pending.result is not None:
                return pending.result
            return await self._bcrypt(password, hashed, entries.dummy)
        pending = self._pending[key] = _Pending()
        try:
            pending.result = await self._bcrypt(password, hashed, entries.dummy)
        finally:
            del self._pending[key]
            pending.done.set()
        if pending.result and hashed is not None:
            self._remember(key, hashed)
        return pending.result

    async def _bcrypt(self, password: str, hashed: bytes | None, dummy: bytes) -> bool:
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(BCRYPT_THREADS)
        candidate = password.encode("utf-8")[:BCRYPT_MAX_PASSWORD]
        async with self._limiter:
            matched = await to_bulk_thread(bcrypt.checkpw, candidate, hashed if hashed is not None else dummy)
        return matched and hashed is not None

    def _cached(self, key: bytes, hashed: bytes) -> bool:
        """These credentials matched this very entry a short while ago."""
        cached = self._cache.get(key)
        return (
            cached is not None
            and cached.expires > time.monotonic()
            and hmac.compare_digest(cached.hashed, hashed)
        )

    def _remember(self, key: bytes, hashed: bytes) -> None:
        self._cache[key] = _Cached(time.monotonic() + CACHE_SECONDS, hashed)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)


def _signature(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class HtpasswdAccessController(AccessController):
    """HTTP Basic authentication against an htpasswd file; a known user may do everything."""

    def __init__(self, realm: str, users: HtpasswdUsers) -> None:
        self.realm = realm
        self.users = users
        self.www_authenticate = challenge("Basic", {"realm": realm})

    async def authorize(self, headers: Mapping[str, str], required: Sequence[Access]) -> Grant:
        credentials = basic_credentials(headers)
        if credentials is None:
            raise Challenge(self.www_authenticate, "authentication required")
        if not await self.users.verify(credentials.username, credentials.password):
            raise Challenge(self.www_authenticate, "invalid username or password")
        return Grant(credentials.username, frozenset(required))

    def decider(self, grant: Grant | None) -> Callable[[Access], bool] | None:
        # A known user may do everything; without credentials, nothing (a challenge).
        signed_in = grant is not None
        return lambda access: signed_in


def htpasswd_controller(section: Section) -> AccessController | None:
    """The controller for ``auth.htpasswd`` (``realm``, ``path``)."""
    section.reject_unknown(["realm", "path"])
    realm = section.string("realm", required=True)
    path = section.string("path", required=True)
    if not path:
        return None
    users = HtpasswdUsers.load(Path(path), section.problems, f"{section.name}.path")
    return HtpasswdAccessController(realm, users) if users is not None else None
