"""Semantic-version ranges over tags: pick the highest tag that satisfies a range.

Ranges use the npm grammar that Flux and Argo CD users know (``>=1.0.0 <2.0.0``,
``^1.2``, ``~1.2``, ``1.x``, ``*``; commas may separate comparators as in Masterminds'
semver). Tags may carry a ``v`` prefix; tags that are not semantic versions are
ignored; pre-releases match only ranges that name a pre-release. Parsing is delegated
to ``semantic_version`` (a well-kept implementation of the npm rules, rather than a
hand-written one). Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable

import semantic_version

from gitops.errors import InvalidURLError

__all__ = ["parse_range", "parse_tag", "select_highest"]


def parse_range(url: str, expression: str) -> semantic_version.NpmSpec:
    """Parse a version range; raises InvalidURLError naming the URL when it is invalid."""
    cleaned = " ".join(part.strip() for part in expression.replace(",", " ").split())
    if not cleaned:
        raise InvalidURLError(url, "semver range is empty")
    try:
        return semantic_version.NpmSpec(cleaned)
    except ValueError as exc:
        raise InvalidURLError(url, f"invalid semver range {expression!r}: {exc}") from exc


def parse_tag(tag: str) -> semantic_version.Version | None:
    """The semantic version a tag names (``v1.2.3`` or ``1.2.3``), or None."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semantic_version.Version(text)
    except ValueError:
        return None


def select_highest(tags: Iterable[str], spec: semantic_version.NpmSpec) -> str | None:
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
