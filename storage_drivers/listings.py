"""The filesystem driver's memory of large directory listings: sorted once, paged from many times."""

from __future__ import annotations

import bisect
import itertools
import os
from array import array
from collections.abc import Iterator, Sequence
from typing import overload

LISTING_CACHE_BYTES = 8 << 20
"""Bytes of packed names kept per process, over all remembered listings (LRU). A name costs its
length plus 4 bytes: 100,000 names of 20 characters take 2.4 MB, where a list of str would take
8 MB."""
REMEMBERED_FROM = 128
"""Directories with fewer names (a repository's own, a tag's) are read afresh each time: that
costs less than packing them."""
SETTLED_AFTER = 2.0
"""Seconds a directory must have gone unmodified before its listing is remembered: a directory's
modification time only moves in clock ticks, so a change made within the same tick as the
listing could otherwise leave the time, and so the remembered listing, unchanged."""

_Validator = tuple[int, int, int, int, int]


def _validator(st: os.stat_result) -> _Validator:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_nlink)


class SortedNames(Sequence[str]):
    """Names in lexical order, packed into one bytes object and the offsets where each ends."""

    __slots__ = ("_data", "_ends")

    def __init__(self, names: list[str]) -> None:
        """``names`` must be sorted."""
        # surrogatepass keeps names the filesystem could not decode (os gives them as surrogates).
        encoded = [name.encode("utf-8", "surrogatepass") for name in names]
        self._data = b"".join(encoded)
        self._ends = array("I", itertools.accumulate(len(name) for name in encoded))

    @property
    def size(self) -> int:
        """Bytes held."""
        return len(self._data) + self._ends.itemsize * len(self._ends)

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        end = self._ends[index]  # IndexError beyond the end, as a list raises
        start = self._ends[index - 1] if index else 0
        return self._data[start:end].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))


def page(names: Sequence[str], after: str | None, limit: int | None) -> list[str]:
    """Up to ``limit`` of the sorted ``names`` that sort after ``after``."""
    start = 0 if after is None else bisect.bisect_right(names, after)
    end = len(names) if limit is None else start + limit
    selected = names[start:end]
    return selected if isinstance(selected, list) else list(selected)


class DirectoryListings:
    """Sorted listings of large directories, each reused while its directory is unchanged.

    Walking the catalog or a repository's tags page by page lists the same directory for every
    page; remembered, a page costs a stat and a binary search instead of reading and sorting the
    whole directory. A remembered listing is only returned after a stat shows the directory as
    it was when listed, so every worker still sees every change at once; it is only remembered
    when the directory had settled before the listing began (``SETTLED_AFTER``).
    """

    def __init__(self, budget: int = LISTING_CACHE_BYTES) -> None:
        self._budget = budget
        self._listings: dict[str, tuple[_Validator, SortedNames]] = {}
        self._size = 0

    def get(self, full: str) -> SortedNames | None:
        """The remembered listing of directory ``full``, if the directory is still as listed."""
        remembered = self._listings.pop(full, None)
        if remembered is None:
            return None
        try:
            current = _validator(os.stat(full))
        except OSError:
            current = None
        if current != remembered[0]:
            self._size -= remembered[1].size
            return None
        self._listings[full] = remembered  # now the most recently used
        return remembered[1]

    def remember(self, full: str, listed_at: float, st: os.stat_result, names: SortedNames) -> None:
        """Keep ``names``, read from ``full`` from time ``listed_at`` on and stat'ed as ``st`` after."""
        if st.st_mtime > listed_at - SETTLED_AFTER or names.size > self._budget:
            return
        self._forget(full)
        while self._size + names.size > self._budget:
            self._forget(next(iter(self._listings)))  # the least recently used
        self._listings[full] = (_validator(st), names)
        self._size += names.size

    def _forget(self, full: str) -> None:
        forgotten = self._listings.pop(full, None)
        if forgotten is not None:
            self._size -= forgotten[1].size
