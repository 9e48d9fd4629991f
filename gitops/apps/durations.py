"""Go-style durations (``1s``, ``5m``, ``1h30m``, ``250ms``, ``1.5h``), as ``time.ParseDuration`` reads them.

:func:`parse_duration` gives integer nanoseconds, exactly as Go does (fractions are
truncated to the nanosecond); :func:`format_duration` writes Go's canonical
``time.Duration.String()`` form (``90 s`` -> ``1m30s``, ``1 h`` -> ``1h0m0s``, ``0.25 s``
-> ``250ms``). :data:`Duration` is the pydantic field type the Application spec uses:
a Go duration string in, seconds (a float) inside, the canonical string out. Pure
functions; error messages never quote the value.
"""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["Duration", "format_duration", "parse_duration", "to_seconds"]

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign, what Go prints
    "\u03bcs": MICROSECOND,  # Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX = (1 << 63) - 1  # Go's time.Duration is an int64 of nanoseconds
_PART = re.compile(r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?P<unit>[^0-9.]*)")

#: what the JSON Schema says of a duration (a regular expression, not the full grammar)
DURATION_PATTERN = r"^[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)$"


def parse_duration(text: str) -> int:
    """Nanoseconds in ``text`` (``[-+]?([0-9]*(\\.[0-9]*)?UNIT)+`` or ``0``), like Go.

    Units: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``. Raises ValueError,
    without quoting the text, for anything Go refuses (a missing or unknown unit, no
    digits, a value beyond int64 nanoseconds, about 292 years).
    """
    if not isinstance(text, str):
        raise ValueError("a duration must be a string such as 30s, 5m or 1h30m")
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError("invalid duration: empty (write e.g. 30s, 5m or 1h30m)")
    total = Fraction(0)
    while rest:
        match = _PART.match(rest)
        assert match is not None  # every group may be empty
        whole, frac, unit = match.group("int"), match.group("frac"), match.group("unit")
        if not whole and not frac:
            raise ValueError("invalid duration: expected a number (write e.g. 30s, 5m or 1h30m)")
        if not unit:
            raise ValueError("invalid duration: missing unit (ns, us, ms, s, m or h)")
        if unit not in _UNITS:
            raise ValueError("invalid duration: unknown unit (use ns, us, ms, s, m or h)")
        number = Fraction(int(whole or "0")) + (
            Fraction(int(frac), 10 ** len(frac)) if frac else Fraction(0)
        )
        total += number * _UNITS[unit]
        if total > _MAX + (1 if negative else 0):
            raise ValueError("invalid duration: out of range (at most about 2562047h)")
        rest = rest[match.end():]
    nanos = int(total)  # truncated towards zero, as Go does
    return -nanos if negative else nanos


def _fraction(value: int, digits: int) -> tuple[str, int]:
    """Go's fmtFrac: the ``digits`` low decimal digits of ``value`` as ``.ddd`` without
    trailing zeros (``""`` when they are all zero), and what is left above them."""
    scale = 10**digits
    low, high = value % scale, value // scale
    text = f"{low:0{digits}d}".rstrip("0")
    return (f".{text}" if text else ""), high


def format_duration(nanos: int) -> str:
    """Go's ``time.Duration.String()`` of ``nanos``: ``1h2m3.5s``, ``1m0s``, ``250ms``, ``0s``."""
    sign, value = ("-", -nanos) if nanos < 0 else ("", nanos)
    if value == 0:
        return "0s"
    if value < SECOND:
        if value < MICROSECOND:
            return f"{sign}{value}ns"
        if value < MILLISECOND:
            frac, whole = _fraction(value, 3)
            return f"{sign}{whole}{frac}\u00b5s"
        frac, whole = _fraction(value, 6)
        return f"{sign}{whole}{frac}ms"
    frac, seconds = _fraction(value, 9)
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds}{frac}s"
    if minutes:
        hours, minutes = divmod(minutes, 60)
        text = f"{minutes}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def to_seconds(value: Any) -> float:
    """A duration field's value in seconds: a Go duration string or a timedelta.

    A bare number is refused (``60`` could mean anything; write ``60s``). Raises ValueError.
    """
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bool, int, float)):
        raise ValueError("a duration needs a unit: write e.g. 30s, 5m or 1h30m, not a bare number")
    return parse_duration(value) / SECOND


def _serialize(seconds: float) -> str:
    return format_duration(round(seconds * SECOND))


#: A pydantic field: Go duration string (or timedelta) in, float seconds inside, canonical Go string out.
Duration = Annotated[
    float,
    BeforeValidator(to_seconds),
    PlainSerializer(_serialize, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN,
                    "description": "a Go duration: 30s, 5m, 1h30m, 250ms"}),
]
