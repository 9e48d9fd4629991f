"""Choosing a tag: Flux's ``semver``, ``alphabetical`` and ``numerical`` policies, with ``filterTags``.

* ``semver``: the highest tag within the range (``v`` prefix allowed; tags that are not
  semantic versions are skipped). A pre-release is a candidate only for a range
  alternative (``||``) that itself names a pre-release (``>=1.0.0-0``), as Flux's
  Masterminds ranges do; it is then compared by plain semver precedence.
* ``alphabetical``: ``asc`` picks the greatest tag in byte order, ``desc`` the least.
* ``numerical``: tags that read as decimal numbers (``12``, ``1.5``, ``-3``, ``2e3``);
  ``asc`` picks the greatest, ``desc`` the least; other tags are skipped.
* ``filterTags``: only tags the ``pattern`` matches (a search, as Go's regexp: anchor it
  with ``^…$``) are candidates; with ``extract`` (``$ts``, ``${ts}``, ``$1``, Go's
  ``Regexp.Expand`` template) the policy orders the extracted values and answers the
  original tag.

Ties (equal versions or numbers spelled differently, equal extracted values) go to the
greater tag for ``asc`` and semver, the lesser for ``desc``, so the choice never depends
on the order the registry listed the tags in. Pure functions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from gitops.images.spec import TagFilter, TagPolicy
from gitops.versions import parse_range, parse_tag

__all__ = ["candidates", "check_extract", "expand", "select_tag"]

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z0-9_]+")


def _template_parts(template: str) -> Iterator[tuple[str, str | None]]:
    """Go's ``Regexp.Expand`` template as ``(literal, group)`` pairs; group None: text only."""
    i = 0
    while i < len(template):
        j = template.find("$", i)
        if j < 0:
            yield template[i:], None
            return
        if j > i:
            yield template[i:j], None
        rest = template[j + 1:]
        if rest.startswith("$"):
            yield "$", None
            i = j + 2
            continue
        if rest.startswith("{"):
            end = rest.find("}")
            name = rest[1:end] if end > 0 else ""
            if end > 0 and _NAME.fullmatch(name):
                yield "", name
                i = j + 2 + end
                continue
        else:
            match = _NAME.match(rest)
            if match:
                yield "", match.group()
                i = j + 1 + match.end()
                continue
        yield "$", None  # malformed: Go keeps the '$' as text
        i = j + 1


def check_extract(regex: re.Pattern[str], template: str) -> None:
    """ValueError unless every group ``template`` names is a group of ``regex``.

    Go would expand an unknown group to nothing, silently making every tag equal; a typo
    is reported instead.
    """
    for _, group in _template_parts(template):
        if group is None:
            continue
        known = group in regex.groupindex if not group.isdigit() else int(group) <= regex.groups
        if not known:
            raise ValueError(f"filterTags.extract names group {group}, which the pattern "
                             "does not define")


def expand(match: re.Match[str], template: str) -> str:
    """``template`` with ``$name``/``${name}``/``$1`` replaced by ``match``'s groups (Go's Expand)."""
    out: list[str] = []
    for text, group in _template_parts(template):
        out.append(text)
        if group is not None:
            key: int | str = int(group) if group.isdigit() else group
            with contextlib.suppress(IndexError):  # out of range: empty, as Go
                out.append(match.group(key) or "")
    return "".join(out)


def _filtered(tags: Iterable[str], filter_tags: TagFilter | None) -> Iterator[tuple[str, str]]:
    """``(value to order, tag)`` for every tag the filter keeps."""
    if filter_tags is None or (not filter_tags.pattern and not filter_tags.extract):
        for tag in tags:
            yield tag, tag
        return
    regex = filter_tags.regex
    for tag in tags:
        match = regex.search(tag)
        if match is None:
            continue
        yield (expand(match, filter_tags.extract) if filter_tags.extract else tag), tag


def _semver_keys(
    pairs: Iterable[tuple[str, str]], expression: str
) -> Iterator[tuple[Any, str]]:
    # each alternative's comparators, checked by plain precedence (semantic_version's own
    # match lets 2.0.0 through "<=2.0.0-rc.5"); pre-releases only where one is named
    semver_range = parse_range("policy.semver.range", expression)  # refuses what npm would
    for value, tag in pairs:
        version = parse_tag(value)
        if version is not None and semver_range.bounds_hold(version):
            yield version.precedence_key, tag


def _numeric_keys(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[float, str]]:
    for value, tag in pairs:
        if _NUMBER.fullmatch(value):
            number = float(value)
            if number == number and abs(number) != float("inf"):  # no NaN or overflow
                yield number, tag


def candidates(
    tags: Iterable[str], policy: TagPolicy, filter_tags: TagFilter | None = None
) -> list[tuple[Any, str]]:
    """Every tag the policy may choose, as ``(ordering key, tag)``, in ascending order."""
    pairs = _filtered(tags, filter_tags)
    keyed: Iterable[tuple[Any, str]]
    if policy.semver is not None:
        keyed = _semver_keys(pairs, policy.semver.range)
    elif policy.numerical is not None:
        keyed = _numeric_keys(pairs)
    else:
        keyed = pairs
    return sorted(keyed)


def select_tag(
    tags: Iterable[str], policy: TagPolicy, filter_tags: TagFilter | None = None
) -> str | None:
    """The tag ``policy`` chooses among ``tags`` (after ``filter_tags``), or None when none fits.

    ``asc`` (and semver) picks the greatest candidate, ``desc`` the least; see the module
    docstring for the orders and the tie rule.
    """
    ordered = candidates(tags, policy, filter_tags)
    if not ordered:
        return None
    return ordered[0][1] if policy.order == "desc" else ordered[-1][1]
