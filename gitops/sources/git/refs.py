"""Which commit a Git source means: ``@REF``, the remote HEAD, or the highest semver tag.

Pure functions over what the remote advertised (:class:`~.transport.RemoteRefs`), and
the revision strings they produce: ``<branch or tag>@sha1:<40 hex>``, or ``sha1:<40 hex>``
for a commit pin. A short name that is both a branch and a tag is refused as ambiguous
rather than guessed. Nothing here touches the network or the cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitops.errors import RevisionNotFoundError
from gitops.sources.git.transport import RemoteRefs
from gitops.sources.git.url import GitURL
from gitops.versions import parse_range, select_highest

__all__ = ["Resolved", "parse_revision", "pin", "prefixes_for", "select"]

_REVISION_RE = re.compile(r"^(?:(?P<name>.+)@)?sha1:(?P<sha>[0-9a-f]{40})$")
_HEADS, _TAGS = "refs/heads/", "refs/tags/"


@dataclass(frozen=True)
class Resolved:
    """One resolved ref: its short ``name`` (None for a pin), full ``ref``, and commit."""

    name: str | None
    ref: str | None
    commit: str
    #: the annotated tag object's id when ``ref`` is an annotated tag
    tag_object: str | None = None

    @property
    def revision(self) -> str:
        return f"{self.name}@sha1:{self.commit}" if self.name else f"sha1:{self.commit}"

    @property
    def is_tag(self) -> bool:
        return self.ref is not None and self.ref.startswith(_TAGS)


def pin(commit: str) -> Resolved:
    """A commit pin: immutable, so it resolves without asking the remote."""
    return Resolved(None, None, commit)


def prefixes_for(url: GitURL) -> list[str]:
    """The ref prefixes worth asking the server for (protocol v2 filters server-side)."""
    if url.semver is not None:
        return [_TAGS]
    if url.ref is None:
        return ["HEAD"]
    if url.ref.startswith("refs/"):
        return [url.ref]
    return [_HEADS + url.ref, _TAGS + url.ref]


def select(url: GitURL, refs: RemoteRefs) -> Resolved:
    """Pick the commit ``url`` names among ``refs``; raises RevisionNotFoundError."""
    shown = url.display
    if url.semver is not None:
        tags = {name[len(_TAGS):]: name for name in refs.refs if name.startswith(_TAGS)}
        best = select_highest(tags, parse_range(shown, url.semver))
        if best is None:
            listed = ", ".join(sorted(tags)[:20]) or "none"
            raise RevisionNotFoundError(
                shown, f"no tag matches semver range {url.semver!r} (tags: {listed})")
        return _resolved(refs, tags[best])
    if url.ref is None:
        return _head(shown, refs)
    if url.ref.startswith("refs/"):
        if url.ref not in refs.refs:
            raise RevisionNotFoundError(shown, f"the remote has no ref {url.ref!r}")
        return _resolved(refs, url.ref)
    branch, tag = _HEADS + url.ref, _TAGS + url.ref
    if branch in refs.refs and tag in refs.refs:
        raise RevisionNotFoundError(
            shown, f"{url.ref!r} is both a branch and a tag; write @{branch} or @{tag}")
    for candidate in (branch, tag):
        if candidate in refs.refs:
            return _resolved(refs, candidate)
    hint = " (commit pins need the full 40-hex SHA)" if re.fullmatch(r"[0-9a-f]{4,39}",
                                                                      url.ref) else ""
    raise RevisionNotFoundError(shown, f"no branch or tag named {url.ref!r}{hint}")


def parse_revision(shown: str, revision: str) -> tuple[str | None, str]:
    """Split ``main@sha1:<hex>`` into ``("main", "<hex>")``; ``sha1:<hex>`` has no name."""
    match = _REVISION_RE.match(revision)
    if match is None:
        raise RevisionNotFoundError(
            shown, f"{revision!r} is not a Git revision (expected NAME@sha1:<40 hex> or "
                   "sha1:<40 hex>)")
    return match.group("name"), match.group("sha")


def short_name(ref: str) -> str:
    """``refs/heads/main`` -> ``main``, ``refs/tags/v1`` -> ``v1``; other refs unchanged."""
    for prefix in (_HEADS, _TAGS):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _head(shown: str, refs: RemoteRefs) -> Resolved:
    commit = refs.refs.get("HEAD")
    if refs.head is not None and refs.head in refs.refs:
        return _resolved(refs, refs.head)
    if commit is None:
        raise RevisionNotFoundError(shown, "the remote has no HEAD (an empty repository?)")
    name = short_name(refs.head) if refs.head else "HEAD"
    return Resolved(name, refs.head or "HEAD", commit)


def _resolved(refs: RemoteRefs, ref: str) -> Resolved:
    target = refs.refs[ref]
    peeled = refs.peeled.get(ref)
    if peeled is not None and peeled != target:
        return Resolved(short_name(ref), ref, peeled, tag_object=target)
    return Resolved(short_name(ref), ref, target)
