"""Semantic-version range selection over tags."""

from __future__ import annotations

import pytest

from gitops.errors import InvalidURLError
from gitops.versions import parse_range, parse_tag, select_highest

TAGS = ["v0.9.0", "v1.0.0", "v1.2.0", "v1.2.7", "1.3.0", "v1.4.0-rc.1", "v2.0.0", "latest",
        "release-5"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (">=1.0.0 <2.0.0", "1.3.0"),
        (">=1.0.0, <2.0.0", "1.3.0"),
        ("^1.2", "1.3.0"),
        ("~1.2", "v1.2.7"),
        ("1.x", "1.3.0"),
        ("*", "v2.0.0"),
        (">=1.4.0-rc.0 <1.5.0", "v1.4.0-rc.1"),
        (">=3", None),
    ],
)
def test_select_highest(expression: str, expected: str | None) -> None:
    assert select_highest(TAGS, parse_range("u", expression)) == expected


def test_non_semver_tags_are_ignored() -> None:
    assert parse_tag("latest") is None and parse_tag("release-5") is None
    assert str(parse_tag("v1.2.3")) == "1.2.3"


def test_ties_are_deterministic() -> None:
    spec = parse_range("u", "1.x")
    assert select_highest(["v1.0.0", "1.0.0"], spec) == select_highest(["1.0.0", "v1.0.0"], spec)


@pytest.mark.parametrize("expression", ["", "  ", ">=banana", "^^1"])
def test_invalid_ranges_name_the_url(expression: str) -> None:
    with pytest.raises(InvalidURLError, match="git\\+file:///r"):
        parse_range("git+file:///r", expression)


@pytest.mark.parametrize("expression", ["1.0.0 - 2.0.0-rc.5", "<=2.0.0-rc.5", ">=1.0.0 <=2.0.0-rc.5"])
def test_a_prerelease_upper_bound_keeps_the_release_out(expression: str) -> None:
    """semantic_version's NpmSpec.match lets 2.0.0 through ``<=2.0.0-rc.5``: a Git or OCI
    source following such a range must not pick the release above the bound."""
    tags = ["v1.5.0", "v2.0.0-rc.4", "v2.0.0-rc.5", "v2.0.0"]
    chosen = select_highest(tags, parse_range("u", expression))
    assert chosen in ("v1.5.0", "v2.0.0-rc.5", "v2.0.0-rc.4")
    assert chosen != "v2.0.0"
