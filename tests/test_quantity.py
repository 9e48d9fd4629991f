"""Kubernetes quantity grammar: exact values, strict rejection, API-server canonical form."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.quantity import MAX_QUANTITY, canonical_quantity, parse_quantity, quantities_equal


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", "0"),
        ("2", "2"),
        ("+2", "2"),
        ("-2", "-2"),
        ("1.5", "1.5"),
        ("5.", "5"),
        (".5", "0.5"),
        ("-.5", "-0.5"),
        ("007", "7"),
        ("1n", "0.000000001"),
        ("1u", "0.000001"),
        ("500m", "0.5"),
        ("1k", "1000"),
        ("1M", "1000000"),
        ("1G", "1e9"),
        ("1T", "1e12"),
        ("1P", "1e15"),
        ("1E", "1e18"),
        ("1Ki", "1024"),
        ("1Mi", "1048576"),
        ("1Gi", "1073741824"),
        ("1Ti", str(2**40)),
        ("1Pi", str(2**50)),
        ("1Ei", str(2**60)),
        ("1.5Gi", "1610612736"),
        ("0.5Ki", "512"),
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("1e+3", "1000"),
        ("1e-3", "0.001"),
        ("-1.5e2", "-150"),
        # more digits than a default decimal context holds: still exact
        (
            "12345678901234567890123456789.123456789Ei",
            f"{12345678901234567890123456789123456789 * 2**60}e-9",
        ),
    ],
)
def test_parse_valid(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "-",
        "+",
        "m",
        "Ki",
        "1e",  # lowercase e is only an exponent marker
        "1K",  # kilo is lowercase k
        "1KI",
        "1mi",
        "1Ki3",
        "1e3.5",
        "1ee3",
        "1.2.3",
        "1,5",
        " 1",
        "1 ",
        "1 Gi",
        "--1",
        "0x10",
        "1_000",
        "inf",
        "NaN",
        "\uff11",  # fullwidth digit: not ASCII
        "1e99999999999999999999",  # beyond any decimal
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize("value", [True, False, None, float("nan"), float("inf"), [], {}, b"1"])
def test_parse_rejects_non_quantities(value: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)  # type: ignore[arg-type]


def test_numbers_are_exact() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.1) == Decimal("0.1")  # what the YAML author wrote, not the binary float
    assert parse_quantity("0.1") + parse_quantity("0.2") == parse_quantity("0.3")
    assert parse_quantity(10**40) == Decimal(10**40)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("500m", "0.5"),
        ("1Gi", "1024Mi"),
        ("1000M", "1G"),
        ("0.1", "100m"),
        ("2", 2),
        ("1e3", "1k"),
        ("1E3", 1000),
        (0.5, "500m"),
        ("1024Ki", "1Mi"),
        ("0", "0m"),
        ("-0", "0"),
        ("0.0000000001", "1n"),  # the API server rounds up to 1n
        ("10E", "9223372036854775807"),  # and caps at 2**63-1
    ],
)
def test_equal_quantities(a: str | int | float, b: str | int | float) -> None:
    assert quantities_equal(a, b)
    assert quantities_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("500m", "501m"),
        ("1Gi", "1G"),
        ("1", "-1"),
        ("1n", "2n"),
        ("x", "x"),  # not a quantity: equals nothing here
        (True, 1),
        (None, None),
        ("1", [1]),
    ],
)
def test_unequal_quantities(a: object, b: object) -> None:
    assert not quantities_equal(a, b)


def test_canonical_rounds_magnitude_up_and_caps() -> None:
    assert canonical_quantity("1.1n") == Decimal("2e-9")
    assert canonical_quantity("-1.1n") == Decimal("-2e-9")
    assert canonical_quantity("100Ei") == MAX_QUANTITY
    assert canonical_quantity("-100Ei") == -MAX_QUANTITY
    assert canonical_quantity("1e-999999") == Decimal("1e-9")


_SUFFIXES: dict[str, Decimal | int] = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=0, max_value=12),
    st.sampled_from(sorted(_SUFFIXES)),
)
def test_suffix_scales_exactly(digits: int, places: int, suffix: str) -> None:
    number = Decimal(f"{digits}e-{places}")
    with localcontext(prec=100):
        expected = number * _SUFFIXES[suffix]
    assert parse_quantity(f"{number:f}{suffix}") == expected


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=-30, max_value=30))
def test_exponent_form(mantissa: int, exponent: int) -> None:
    assert parse_quantity(f"{mantissa}e{exponent}") == Decimal(f"{mantissa}e{exponent}")
