"""Tag policies (gitops.images.policy): Flux's semver, alphabetical and numerical orders, filterTags.

Examples pin the semantics; property tests check the ordering laws against independent
oracles (Python's sorted(), float(), semantic_version) rather than against the module.
"""

from __future__ import annotations

import re

import pytest
import semantic_version
from hypothesis import assume, given
from hypothesis import strategies as st

from gitops.images.policy import candidates, check_extract, expand, select_tag
from gitops.images.spec import TagFilter, TagPolicy


def semver(range_: str) -> TagPolicy:
    return TagPolicy.parse(f"semver:{range_}")


ALPHA_ASC, ALPHA_DESC = TagPolicy.parse("alphabetical:asc"), TagPolicy.parse("alphabetical:desc")
NUM_ASC, NUM_DESC = TagPolicy.parse("numerical:asc"), TagPolicy.parse("numerical:desc")


# -- examples --------------------------------------------------------------------------


def test_semver_picks_the_highest_release_in_range() -> None:
    tags = ["1.0.0", "v1.4.2", "1.4.10", "2.0.0", "latest", "1.5", "main-abc", "v1.9.0-rc.1"]
    assert select_tag(tags, semver(">=1.0.0 <2.0.0")) == "1.4.10"
    assert select_tag(tags, semver("^1.0")) == "1.4.10"
    assert select_tag(tags, semver("~1.4.0")) == "1.4.10"
    assert select_tag(tags, semver("*")) == "2.0.0"
    assert select_tag(tags, semver("1.0.x")) == "1.0.0"
    assert select_tag(tags, semver(">=3.0.0")) is None
    assert select_tag(tags, semver("<1.0.0 || >=1.4.0 <1.4.5")) == "v1.4.2"


def test_prereleases_only_when_the_range_names_one() -> None:
    tags = ["1.0.0", "1.1.0-rc.1", "1.1.0-rc.2", "2.0.0-alpha.1"]
    assert select_tag(tags, semver(">=1.0.0")) == "1.0.0"
    assert select_tag(tags, semver("<3.0.0")) == "1.0.0"  # 2.0.0-alpha.1 < 3.0.0, yet no
    assert select_tag(tags, semver(">=1.0.0-0")) == "2.0.0-alpha.1"
    assert select_tag(tags, semver(">=1.0.0-0 <2.0.0-0")) == "1.1.0-rc.2"
    # only the alternative that names a pre-release admits one
    assert select_tag(tags, semver("^1.0.0 || >=2.0.0-0")) == "2.0.0-alpha.1"
    assert select_tag(tags, semver("^1.0.0-0 || >=3.0.0")) == "1.1.0-rc.2"


def test_equal_versions_spelled_differently_choose_deterministically() -> None:
    assert select_tag(["v1.0.0", "1.0.0"], semver("*")) == "v1.0.0"
    assert select_tag(["1.0.0", "v1.0.0"], semver("*")) == "v1.0.0"


def test_alphabetical_asc_is_the_greatest_desc_the_least() -> None:
    tags = ["b", "a", "c", "C", "bb"]
    assert select_tag(tags, ALPHA_ASC) == "c"
    assert select_tag(tags, ALPHA_DESC) == "C"  # byte order: upper case first


def test_numerical_parses_numbers_and_skips_the_rest() -> None:
    tags = ["9", "10", "1.5", "-3", "2e1", "latest", "0x10", "inf", "nan", "1_000", " 7"]
    assert select_tag(tags, NUM_ASC) == "2e1"  # 20
    assert select_tag(tags, NUM_DESC) == "-3"
    assert [tag for _, tag in candidates(tags, NUM_ASC)] == ["-3", "1.5", "9", "10", "2e1"]
    assert select_tag(["a", "b"], NUM_ASC) is None


def test_filter_tags_with_extract_orders_by_the_timestamp() -> None:
    tags = ["main-aaa111-1700000300", "main-fff999-1700000100", "main-0b0b0b-1700000200",
            "feature-ccc-1800000000", "main-xyz"]
    flt = TagFilter(pattern=r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", extract="$ts")
    assert select_tag(tags, NUM_ASC, flt) == "main-aaa111-1700000300"
    assert select_tag(tags, NUM_DESC, flt) == "main-fff999-1700000100"
    go_syntax = TagFilter(pattern=r"^main-[a-f0-9]+-(?<ts>[0-9]+)$", extract="${ts}")
    assert select_tag(tags, ALPHA_ASC, go_syntax) == "main-aaa111-1700000300"


def test_filter_without_extract_keeps_matching_tags_whole() -> None:
    tags = ["v1.2.0", "1.3.0", "v1.1.0"]
    assert select_tag(tags, semver("*"), TagFilter(pattern="^v")) == "v1.2.0"
    # extract a version out of a decorated tag, and order by it
    flt = TagFilter(pattern=r"^app-(?P<v>.*)-linux$", extract="$v")
    assert select_tag(["app-1.9.0-linux", "app-1.10.0-linux", "app-2.0.0-win"], semver("^1"),
                      flt) == "app-1.10.0-linux"


def test_the_pattern_searches_as_go_does() -> None:
    flt = TagFilter(pattern="rc")  # not anchored: anywhere in the tag
    assert select_tag(["1-rc", "rc-2", "final"], ALPHA_ASC, flt) == "rc-2"


def test_expand_follows_go_regexp_expand() -> None:
    match = re.search(r"(?P<a>x+)-(?P<b>y+)", "xx-yyy")
    assert match is not None
    assert expand(match, "$a.$b") == "xx.yyy"
    assert expand(match, "${a}b") == "xxb"
    assert expand(match, "$ab") == ""  # the longest name: ${ab}, unknown, empty
    assert expand(match, "$1$2") == "xxyyy"
    assert expand(match, "$$a") == "$a"
    assert expand(match, "cost $") == "cost $"  # a malformed reference stays text
    assert expand(match, "${") == "${"
    assert expand(match, "$9") == ""  # out of range: empty


def test_extract_must_name_groups_of_the_pattern() -> None:
    check_extract(re.compile(r"(?P<ts>\d+)"), "$ts-$1 $$")
    with pytest.raises(ValueError, match="group tss"):
        check_extract(re.compile(r"(?P<ts>\d+)"), "$tss")
    with pytest.raises(ValueError, match="group 2"):
        check_extract(re.compile(r"(\d+)"), "${2}")


# -- ordering laws (property tests) -----------------------------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
plain_tags = st.text(alphabet=ALPHABET, min_size=1, max_size=8)

numbers = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(lambda f: f"{f:g}"),
    st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False).map(str),
)
numeric_tags = st.one_of(numbers, plain_tags)

prerelease = st.sampled_from(["", "", "", "-rc.1", "-rc.2", "-alpha", "-0", "-beta.10"])
versions = st.builds(lambda p, a, b, c, pre: f"{p}{a}.{b}.{c}{pre}",
                     st.sampled_from(["", "", "v"]), st.integers(0, 4), st.integers(0, 12),
                     st.integers(0, 12), prerelease)
semver_tags = st.one_of(versions, versions, plain_tags)
RANGES = ["*", ">=1.0.0", "^1.2.0", "~0.3", "1.x", ">=0.5.0 <2.0.0", ">=1.0.0-0",
          "^2.0.0-rc.1", "<1.0.0 || >=3.0.0", "2.1.x || 4.x", ">=0.0.0-0 <3.0.0-0"]
ranges = st.sampled_from(RANGES)

policies = st.sampled_from([ALPHA_ASC, ALPHA_DESC, NUM_ASC, NUM_DESC]) | ranges.map(semver)


def tags_for(policy: TagPolicy) -> st.SearchStrategy[list[str]]:
    kind = {"semver": semver_tags, "numerical": numeric_tags, "alphabetical": plain_tags}
    return st.lists(kind[policy.kind], max_size=30)


def parse_semver(tag: str) -> semantic_version.Version | None:
    try:
        return semantic_version.Version(tag[1:] if tag.startswith("v") else tag)
    except ValueError:
        return None


def oracle_key(policy: TagPolicy, tag: str) -> object | None:
    """The value a tag is ordered by, independently of the module; None: not a candidate."""
    if policy.kind == "alphabetical":
        return tag
    if policy.kind == "numerical":
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", tag):
            return None
        return float(tag)
    version = parse_semver(tag)
    assert policy.semver is not None
    if version is None or version.prerelease:  # only used for ranges naming no pre-release
        return None
    return version if semantic_version.NpmSpec(policy.semver.range).match(version) else None


@given(policies.flatmap(lambda p: st.tuples(st.just(p), tags_for(p))))
def test_the_choice_is_an_input_tag_and_the_extreme_candidate(
    case: tuple[TagPolicy, list[str]]
) -> None:
    policy, tags = case
    chosen = select_tag(tags, policy)
    keyed = [(oracle_key(policy, tag), tag) for tag in tags]
    eligible = [(key, tag) for key, tag in keyed if key is not None]
    if policy.kind != "semver" or policy.semver is None or "-" not in policy.semver.range:
        # the oracle is exact for these; ranges naming pre-releases are checked below
        if not eligible:
            assert chosen is None
            return
        assert chosen in tags
        values = [key for key, _ in eligible]
        best = min(values) if policy.order == "desc" else max(values)  # type: ignore[type-var]
        assert oracle_key(policy, chosen) == best
    elif chosen is not None:
        assert chosen in tags


@given(policies.flatmap(lambda p: st.tuples(st.just(p), tags_for(p))), st.randoms())
def test_the_choice_does_not_depend_on_the_input_order(
    case: tuple[TagPolicy, list[str]], random: object
) -> None:
    policy, tags = case
    shuffled = list(tags)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert select_tag(shuffled, policy) == select_tag(tags, policy)
    assert select_tag(reversed(tags), policy) == select_tag(tags, policy)


@given(policies.flatmap(lambda p: st.tuples(st.just(p), tags_for(p), tags_for(p))))
def test_adding_tags_that_order_below_the_choice_changes_nothing(
    case: tuple[TagPolicy, list[str], list[str]]
) -> None:
    policy, tags, more = case
    chosen = select_tag(tags, policy)
    assume(chosen is not None)
    assert chosen is not None
    rank = {tag: (key, tag) for key, tag in candidates(tags + more, policy)}

    def worse(tag: str) -> bool:  # not a candidate, or beaten by the choice
        if tag not in rank:
            return True
        return rank[tag] > rank[chosen] if policy.order == "desc" else rank[tag] < rank[chosen]

    worse_tags = [tag for tag in more if worse(tag)]
    assert select_tag(tags + worse_tags, policy) == chosen
    assert select_tag(worse_tags + tags, policy) == chosen


@given(st.lists(semver_tags, max_size=30), ranges)
def test_semver_never_picks_a_prerelease_unless_the_range_names_one(
    tags: list[str], range_: str
) -> None:
    chosen = select_tag(tags, semver(range_))
    if chosen is None:
        return
    version = parse_semver(chosen)
    assert version is not None
    assert semantic_version.NpmSpec(range_) is not None
    if version.prerelease:
        assert re.search(r"\d+\.\d+\.\d+-", range_)
    else:
        assert semantic_version.NpmSpec(range_).match(version)


@given(st.lists(st.tuples(st.sampled_from(["main", "dev"]), st.text("0123456789abcdef", min_size=1,
                                                                      max_size=6),
                          st.integers(0, 2_000_000_000)), max_size=20))
def test_extracted_timestamps_choose_the_newest_build(
    builds: list[tuple[str, str, int]]
) -> None:
    tags = [f"{branch}-{sha}-{ts}" for branch, sha, ts in builds]
    flt = TagFilter(pattern=r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", extract="$ts")
    chosen = select_tag(tags, NUM_ASC, flt)
    mains = [ts for branch, _, ts in builds if branch == "main"]
    if not mains:
        assert chosen is None
        return
    assert chosen is not None and chosen.startswith("main-")
    assert int(chosen.rsplit("-", 1)[1]) == max(mains)


@pytest.mark.parametrize(("range_", "chosen"), [
    ("1.0.0 - 2.0.0-rc.5", "2.0.0-rc.2"),
    ("<=2.0.0-rc.5", "2.0.0-rc.2"),
    (">=1.0.0 <=2.0.0-rc.5", "2.0.0-rc.2"),
    ("<=2.0.0", "2.0.0"),
])
def test_a_prerelease_upper_bound_excludes_the_release_above_it(range_: str, chosen: str) -> None:
    # 2.0.0 is above 2.0.0-rc.5 (semantic_version's NpmSpec.match says it is within)
    tags = ["1.0.0", "1.5.0", "2.0.0-rc.2", "2.0.0-rc.9", "2.0.0"]
    assert select_tag(tags, semver(range_)) == chosen
