"""Kubernetes resource quantities (``500m``, ``1Gi``, ``1e3``) as exact decimals.

Differs use this to see that ``500m`` and ``0.5`` are the same CPU request. The full
``resource.Quantity`` grammar is accepted::

    quantity        ::= [sign] number [suffix]
    number          ::= digits | digits "." [digits] | "." digits
    suffix          ::= binarySI | decimalSI | decimalExponent
    binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
    decimalSI       ::= n | u | m | k | M | G | T | P | E
    decimalExponent ::= ("e" | "E") [sign] digits

``1E`` is one exa, ``1E3`` is one thousand. Parsing is exact (``decimal.Decimal``) and
strict: this module must never go through ``float`` for a string, never round in
:func:`parse_quantity`, and never accept input outside the grammar (``ValueError``).
"""

from __future__ import annotations

import decimal
import functools
import math
import re
from decimal import Decimal

__all__ = ["MAX_QUANTITY", "canonical_quantity", "parse_quantity", "quantities_equal"]

#: The largest magnitude the API server stores; larger quantities are capped to it.
MAX_QUANTITY = Decimal(2**63 - 1)

_NANO = Decimal("1e-9")

_QUANTITY_RE = re.compile(
    r"(?P<sign>[+-]?)"
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)

_DECIMAL_EXPONENTS = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_POWERS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}

# Every flag that could mean "not exact" or "out of range" is a trap.
_EXACT_TRAPS = [
    decimal.Inexact,
    decimal.InvalidOperation,
    decimal.Overflow,
    decimal.Underflow,
    decimal.Clamped,
    decimal.Subnormal,
    decimal.Rounded,
]


def _exact_context(digits: int) -> decimal.Context:
    return decimal.Context(
        prec=digits + 20, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=_EXACT_TRAPS
    )


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Decimal:
    match = _QUANTITY_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    sign, number = match["sign"], match["number"]
    context = _exact_context(len(number))
    try:
        if match["binary"] is not None:
            factor = Decimal(2 ** _BINARY_POWERS[match["binary"]])
            return context.multiply(context.create_decimal(sign + number), factor)
        if match["exponent"] is not None:
            exponent = int(match["exponent"])
        else:
            exponent = _DECIMAL_EXPONENTS[match["decimal"]]
        return context.create_decimal(f"{sign}{number}E{exponent}")
    except decimal.DecimalException as exc:
        raise ValueError(f"quantity {text!r} is out of range") from exc


def parse_quantity(value: str | int | float) -> Decimal:
    """Return the exact value of a quantity (a string, or a JSON/YAML number).

    Raises ``ValueError`` for anything else: text outside the grammar, booleans,
    non-finite floats, exponents beyond what a decimal can hold.
    """
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}: a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        # repr() is the shortest text that reads back as this float: the 0.1 a YAML
        # author wrote, not 0.1000000000000000055...
        return _parse_text(repr(value))
    raise ValueError(f"invalid quantity {value!r}")


def canonical_quantity(value: str | int | float) -> Decimal:
    """Return the value the API server stores for a quantity.

    Like ``resource.ParseQuantity``: the magnitude is rounded up to a whole nano
    (``0.1n`` -> ``1n``) and capped at 2**63-1. Raises ``ValueError`` like
    :func:`parse_quantity`.
    """
    exact = parse_quantity(value)
    if abs(exact) > MAX_QUANTITY:
        return MAX_QUANTITY.copy_sign(exact)
    return exact.quantize(_NANO, rounding=decimal.ROUND_UP, context=decimal.Context(prec=40))


def quantities_equal(a: object, b: object) -> bool:
    """True when ``a`` and ``b`` are both quantities the API server stores as equal.

    ``"500m"`` equals ``0.5``, ``"1Gi"`` equals ``"1024Mi"``; anything that is not a
    quantity equals nothing (never raises).
    """
    if not isinstance(a, str | int | float) or not isinstance(b, str | int | float):
        return False
    try:
        return canonical_quantity(a) == canonical_quantity(b)
    except ValueError:
        return False
