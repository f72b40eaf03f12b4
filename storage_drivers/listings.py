"""The filesystem driver's memory of large directory listings."""

from __future__ import annotations

import os

LISTING_CACHE_NAMES = 32768
"""Names kept, over all remembered listings of large directories."""
SETTLED_AFTER = 2.0
"""Seconds a directory must have gone unmodified before its listing is remembered: a directory's
modification time only moves in clock ticks, so a change made within the same tick as the
listing could otherwise leave the time, and so the remembered listing, unchanged."""

_Validator = tuple[int, int, int, int, int]


def _validator(st: os.stat_result) -> _Validator:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_nlink)


class DirectoryListings:
    """Sorted listings of large directories, each reused while its directory is unchanged.

    Walking the catalog page by page lists the same directory of thousands of repositories for
    every page. A remembered listing is only returned after a stat shows the directory as it was
    when listed, so every worker still sees every change at once; it is only remembered when the
    directory had settled before the listing began (``SETTLED_AFTER``).
    """

    def __init__(self) -> None:
        self._listings: dict[str, tuple[_Validator, list[str]]] = {}
        self._names = 0

    def get(self, full: str) -> list[str] | None:
        """The remembered listing of directory ``full``, if the directory is still as listed."""
        remembered = self._listings.get(full)
        if remembered is None:
            return None
        try:
            current = _validator(os.stat(full))
        except OSError:
            current = None
        if current != remembered[0]:
            self._forget(full)
            return None
        return remembered[1]

    def remember(self, full: str, listed_at: float, st: os.stat_result, names: list[str]) -> None:
        """Keep ``names``, read from ``full`` from time ``listed_at`` on and stat'ed as ``st`` after."""
        if st.st_mtime > listed_at - SETTLED_AFTER or len(names) > LISTING_CACHE_NAMES:
            return
        self._forget(full)
        while self._names + len(names) > LISTING_CACHE_NAMES:
            self._forget(next(iter(self._listings)))  # the oldest
        self._listings[full] = (_validator(st), names)
        self._names += len(names)

    def _forget(self, full: str) -> None:
        forgotten = self._listings.pop(full, None)
        if forgotten is not None:
            self._names -= len(forgotten[1])
