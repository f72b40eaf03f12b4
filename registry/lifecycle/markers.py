"""The "condemned" markers a collection run writes before it deletes (the protocol is in ``sweep``).

One marker object per group of digests sharing an algorithm and the first two hex digits of
their hex (``paths.gc_condemned``), listing them one a line: a run condemning thousands of
digests writes at most 256 objects per algorithm instead of one per digest, and a push's check
reads the one marker each of its digests would be listed in. A marker is only ever replaced
whole (an atomic write), so a reader sees the list before a change or after it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..references import Digest, RunId
from ..storage import paths


def grouped(run: RunId, digests: Iterable[Digest]) -> dict[str, list[Digest]]:
    """Each marker's path, with the digests it lists, sorted."""
    groups: dict[str, list[Digest]] = {}
    for digest in sorted(digests, key=str):
        groups.setdefault(paths.gc_condemned(run, digest), []).append(digest)
    return groups


def encode(digests: Iterable[Digest]) -> bytes:
    return "".join(f"{digest}\n" for digest in digests).encode()


def listed(content: bytes) -> set[str]:
    """The digests a marker lists, as written."""
    return set(content.decode("ascii", "replace").split())
