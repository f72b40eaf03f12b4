"""The one duration syntax of every configuration section.

A duration is Go's ``time.ParseDuration`` syntax, as Distribution reads its durations: an
optional sign and one or more decimal numbers with a unit (``ns``, ``us``/``µs``, ``ms``, ``s``,
``m``, ``h``), such as ``300s``, ``1.5h``, ``.5s`` or ``2h45m``; ``0`` needs no unit. A bare
integer is a number of seconds (``300``): Distribution refuses one in ``uploadpurging`` and
reads one as nanoseconds in its typed fields, where no working config writes one, while the
token server (Dockyard's own section) always took seconds; so seconds is the one reading that
breaks no config that loaded before.
"""

from __future__ import annotations

import re
from fractions import Fraction

_EXAMPLES = "300 (seconds), 90s, 45m, 2h10m or 168h"

_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU: Go accepts both
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LONGEST = (1 << 63) - 1
"""Go keeps durations in a signed 64-bit count of nanoseconds (about 292 years)."""
_TERM = re.compile(r"(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?(?P<unit>[^0-9.]*)")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a bare integer of seconds or a Go duration; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a number given in Python reads as the same number written in YAML
    if not isinstance(value, str):
        raise _invalid(value)
    text = value.strip()
    if text.isascii() and text.isdigit():
        nanoseconds = int(text) * _NANOSECONDS["s"]
    else:
        nanoseconds = _go_nanoseconds(text, value)
    if abs(nanoseconds) > _LONGEST:
        raise ValueError(f"{value!r} is longer than the longest duration (about 292 years)")
    return nanoseconds / _NANOSECONDS["s"]


def _go_nanoseconds(text: str, value: object) -> int:
    """``time.ParseDuration``'s grammar, in whole nanoseconds (a finer fraction is dropped)."""
    sign = -1 if text.startswith("-") else 1
    rest = text[1:] if text[:1] in {"-", "+"} else text
    if rest == "0":
        return 0
    if not rest:
        raise _invalid(value)
    total, position = 0, 0
    while position < len(rest):
        term = _TERM.match(rest, position)
        if term is None or term.end() == position:
            raise _invalid(value)
        whole, fraction, unit = term["whole"], term["fraction"] or "", term["unit"]
        if not (whole or fraction) or unit not in _NANOSECONDS:
            raise _invalid(value)
        scale = _NANOSECONDS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(Fraction(int(fraction), 10 ** len(fraction)) * scale)
        position = term.end()
    return sign * total


def _invalid(value: object) -> ValueError:
    return ValueError(f"{value!r} is not a duration such as {_EXAMPLES}")
