"""Kubernetes ``resource.Quantity`` as the API server stores it: parse, then print canonically.

A real API server decodes every quantity field of a built-in object into a Go
``resource.Quantity`` and encodes it again, so ``1000m`` is stored and served as ``1``,
``1024Mi`` as ``1Gi`` and ``0.5`` as ``500m``. This module reproduces
``k8s.io/apimachinery/pkg/api/resource`` of Kubernetes 1.32 (``ParseQuantity``,
``Quantity.String``/``CanonicalizeBytes``) step by step, quirks included:

- the suffix family of the input is kept: binary (``Ki`` .. ``Ei``), decimal (``n`` .. ``E``)
  or exponent (``1e3`` stays ``1e3``; ``1000`` becomes ``1k``);
- a binary quantity below 1024 or with a fraction is printed in decimal (``0.5Ki`` ->
  ``512``, ``1.5Ki`` -> ``1536``);
- magnitudes are rounded up to a whole nano; only binary quantities are capped at 2**63-1
  (``12E`` stays ``12E``);
- text that passes Go's cheap "already canonical" test is kept verbatim, sign and all
  (``+1``, ``1.500``, ``01Ki``), exactly as ``ParseQuantity`` caches it.

The general grammar and exact values also live in :mod:`gitops.quantity` (what differs use
to compare); this module adds what only the server does: choosing the printed form. It
never goes through ``float`` for text and never rounds except where Go does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, ROUND_UP, Context, Decimal, DecimalException

__all__ = ["BINARY_SI", "DECIMAL_EXPONENT", "DECIMAL_SI", "Quantity", "QuantityError", "canonical", "parse"]

DECIMAL_EXPONENT = "DecimalExponent"
BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"

#: Go's error texts (``ErrFormatWrong``, ``ErrNumeric``, ``ErrSuffix``)
FORMAT_WRONG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
NUMERIC = "unable to parse numeric part of quantity"
SUFFIX = "unable to parse quantity's suffix"

_MAX = Decimal(2**63 - 1)
_NANO = Decimal("1e-9")
_MAX_INT64_FACTORS = 18
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: large enough for any exponent the int32 suffix allows; results are exact (Go uses big integers)
_CONTEXT = Context(prec=100, Emax=MAX_EMAX, Emin=MIN_EMIN)
#: exponents beyond this would need astronomically many digits; Go would exhaust memory
_MAX_DIGITS = 10_000
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DECIMAL_SUFFIXES = {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_NAMES = {exp: name for name, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_NAMES = {exp // 10: name for name, exp in _BINARY_SUFFIXES.items()}


class QuantityError(ValueError):
    """Text the API server refuses as a quantity; the message is the server's."""


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity: its exact ``value``, its ``format`` and Go's cached text, if any."""

    value: Decimal
    format: str
    cached: str | None = None

    def __str__(self) -> str:
        return self.cached if self.cached is not None else _canonical_text(self.value, self.format)


@dataclass(frozen=True)
class _Scan:
    positive: bool
    value: str
    num: str
    denom: str
    suffix: str


def _scan(text: str) -> _Scan:
    """Go's ``parseQuantityString``: sign, numerator (leading zeros stripped), denominator, suffix."""
    positive, pos, end = True, 0, len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] != "-"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return _Scan(positive, "0", "0", "", "")
    start = pos
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    num = text[start:pos] or "0"
    if pos >= end:
        return _Scan(positive, text, num, "", "")
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return _Scan(positive, text, num, denom, "")
    value, suffix_start = text[:pos], pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_WRONG)
    return _Scan(positive, value, num, denom, text[suffix_start:])


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix, like Go's ``suffixHandler.interpret``."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        body = digits[1:] if digits[:1] in ("+", "-") else digits
        if body.isdigit() and body.isascii():
            exponent = int(digits)
            if _INT64_MIN <= exponent <= _INT64_MAX:
                return 10, (exponent + 2**31) % 2**32 - 2**31, DECIMAL_EXPONENT  # Go's int32(parsed)
    raise QuantityError(SUFFIX)


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Quantity:
    if not text:
        raise QuantityError(FORMAT_WRONG)
    if text == "0":
        return Quantity(Decimal(0), DECIMAL_SI, "0")
    scan = _scan(text)
    base, exponent, fmt = _interpret(scan.suffix)
    if fmt == BINARY_SI:
        scale, mantissa = 0, 1
        if exponent >= 0 and not scan.denom:
            mantissa = 1 << exponent
            precision = 15 - len(scan.num) - int(exponent * 3 / 10) - 1
        else:
            precision = -1
    else:
        scale, mantissa = exponent, 1
        precision = _MAX_INT64_FACTORS - (len(scan.num) + len(scan.denom))
    if precision >= 0:
        scale -= len(scan.denom)
        if scale >= -9:
            shifted = scan.num + scan.denom
            value = int(shifted)
            result = value * mantissa
            if _INT64_MIN <= result <= _INT64_MAX:  # Go's int64Multiply did not overflow
                if not scan.positive:
                    result = -result
                amount = Decimal(result).scaleb(scale, _CONTEXT)
                if fmt == BINARY_SI:
                    keep = exponent % 10 == 0 and value & 0x07 != 0
                else:
                    keep = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
                return Quantity(amount, fmt, text if keep else None)
    try:
        amount = Decimal(scan.value)
        if abs(exponent) > _MAX_DIGITS or len(scan.value) > _MAX_DIGITS:
            raise QuantityError(NUMERIC)
        exact = Context(prec=len(scan.value) + abs(exponent) + 30, Emax=MAX_EMAX, Emin=MIN_EMIN)
        amount = amount.scaleb(exponent, exact) if base == 10 else exact.multiply(amount, Decimal(2**exponent))
        negative = amount < 0
        amount = abs(amount)
        if amount != 0:
            amount = amount.quantize(_NANO, rounding=ROUND_UP, context=exact)
    except DecimalException:
        raise QuantityError(NUMERIC) from None
    if fmt == BINARY_SI and amount > _MAX:
        amount = _MAX
    if fmt == BINARY_SI and 0 < amount < 1:
        fmt = DECIMAL_SI
    return Quantity(-amount if negative else amount, fmt)


def parse(value: object) -> Quantity:
    """Parse a quantity field's JSON value as the server's ``Quantity.UnmarshalJSON`` does.

    Strings are trimmed of surrounding white space; JSON numbers are read as their text
    (``repr`` for floats, the shortest form that reads back). Raises :class:`QuantityError`
    with the server's message for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(FORMAT_WRONG)
    text = repr(value) if isinstance(value, float) else str(value)
    return _parse_text(text.strip())


def canonical(value: object) -> str:
    """The text a real API server stores and serves for a quantity (``"1000m"`` -> ``"1"``)."""
    return str(parse(value))


def _strip_factors(mantissa: int, factor: int) -> tuple[int, int]:
    times = 0
    while mantissa != 0 and mantissa % factor == 0:
        mantissa //= factor
        times += 1
    return mantissa, times


def _canonical_text(value: Decimal, fmt: str) -> str:
    """Go's ``CanonicalizeBytes``: the largest suffix that keeps the number whole."""
    if value == 0:
        return "0"
    if fmt == BINARY_SI and (-1024 < value < 1024 or value != value.to_integral_value()):
        fmt = DECIMAL_SI  # small or fractional binary quantities print in decimal, losing nothing
    if fmt == BINARY_SI:
        number, power = _strip_factors(int(value), 1024)
        return f"{number}{_BINARY_NAMES.get(power, '')}"
    sign, digits, exponent = value.as_tuple()
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    assert isinstance(exponent, int)
    mantissa, times = _strip_factors(mantissa, 10)
    exponent += times
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if fmt == DECIMAL_SI:
        return f"{mantissa}{_DECIMAL_NAMES.get(exponent, '')}"
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)
