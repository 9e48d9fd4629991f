"""Semantic-version ranges over tags: pick the highest tag that satisfies a range.

Ranges use the npm grammar that Flux and Argo CD users know (``>=1.0.0 <2.0.0``,
``^1.2``, ``~1.2``, ``1.x``, ``*``; commas may separate comparators as in Masterminds'
semver). Tags may carry a ``v`` prefix; tags that are not semantic versions are
ignored; pre-releases match only ranges that name a pre-release. Parsing is delegated
to ``semantic_version`` (a well-kept implementation of the npm rules, rather than a
hand-written one), with every bound checked again by plain precedence:
``semantic_version``'s ``NpmSpec.match`` lets ``2.0.0`` through ``<=2.0.0-rc.5``. Pure
functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import semantic_version

from gitops.errors import InvalidURLError

__all__ = ["SemverRange", "parse_range", "parse_tag", "select_highest"]

# a version with a pre-release part, as written in a range (``1.0.0-0``, ``v2.1.0-rc.1``)
_PRERELEASE_IN_RANGE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+-[0-9A-Za-z]")

Comparator = tuple[str, semantic_version.Version]


class SemverRange:
    """A parsed range: npm's rules, each ``||`` alternative's bounds checked by precedence."""

    def __init__(self, npm: semantic_version.NpmSpec, expression: str) -> None:
        self.npm = npm
        #: each ``||`` alternative: its primitive comparators, and whether it names a
        #: pre-release (only such an alternative may admit one)
        self.alternatives: list[tuple[list[Comparator], bool]] = [
            (_comparators(text), bool(_PRERELEASE_IN_RANGE.search(text)))
            for text in expression.split("||")]

    def bounds_hold(self, version: semantic_version.Version, *,
                    prerelease_needs_naming: bool = True) -> bool:
        """Whether one alternative's comparators all hold for ``version`` by precedence
        (build metadata ignored); with ``prerelease_needs_naming``, a pre-release only in
        an alternative that names one."""
        bare = version.truncate("prerelease")
        return any(all(_holds(op, target, bare) for op, target in comparators)
                   for comparators, names in self.alternatives
                   if names or not version.prerelease or not prerelease_needs_naming)

    def match(self, version: semantic_version.Version) -> bool:
        """npm's match, and every bound of a matching alternative by plain precedence."""
        return bool(self.npm.match(version)) and self.bounds_hold(version)


def _comparators(alternative: str) -> list[Comparator]:
    """One ``||`` alternative as primitive comparators (``^``, ``~``, ``x`` and ``a - b``
    expanded by semantic_version's npm parser)."""
    group = " ".join(alternative.replace(",", " ").split()) or ">=0.0.0"
    parse = semantic_version.NpmSpec.Parser.parse_simple
    if " - " in group:
        low, _, high = group.partition(" - ")
        ranges = parse(">=" + low) + parse("<=" + high)
    else:
        ranges = [r for block in group.split(" ") for r in parse(block)]
    return [(r.operator, r.target.truncate("prerelease")) for r in ranges]


def _holds(operator: str, target: semantic_version.Version,
           version: semantic_version.Version) -> bool:
    """``version OPERATOR target`` by plain precedence; ``< X.Y.Z`` excludes X.Y.Z's
    pre-releases (they sort below X.Y.Z, yet are not "below version X.Y.Z")."""
    if operator == "<" and not target.prerelease:
        target = semantic_version.Version(major=target.major, minor=target.minor,
                                          patch=target.patch, prerelease=("0",))
    compare = {"<": version < target, "<=": version <= target, "==": version == target,
               ">=": version >= target, ">": version > target, "!=": version != target}
    return bool(compare[operator])


def parse_range(url: str, expression: str) -> SemverRange:
    """Parse a version range; raises InvalidURLError naming the URL when it is invalid."""
    cleaned = " ".join(part.strip() for part in expression.replace(",", " ").split())
    if not cleaned:
        raise InvalidURLError(url, "semver range is empty")
    try:
        return SemverRange(semantic_version.NpmSpec(cleaned), cleaned)
    except ValueError as exc:
        raise InvalidURLError(url, f"invalid semver range {expression!r}: {exc}") from exc


def parse_tag(tag: str) -> semantic_version.Version | None:
    """The semantic version a tag names (``v1.2.3`` or ``1.2.3``), or None."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semantic_version.Version(text)
    except ValueError:
        return None


def select_highest(tags: Iterable[str], spec: SemverRange) -> str | None:
    """The tag with the highest version satisfying ``spec`` (None if none does).

    Ties between equal versions spelled differently (``v1.0.0`` and ``1.0.0``) go to
    the lexically smallest tag, so the choice is deterministic.
    """
    best: tuple[semantic_version.Version, str] | None = None
    for tag in sorted(tags):
        version = parse_tag(tag)
        if version is None or not spec.match(version):
            continue
        if best is None or version > best[0]:
            best = (version, tag)
    return None if best is None else best[1]
