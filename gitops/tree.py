"""Safe, deterministic walking of an artifact tree.

The directory source (for its digest) and the manifest loader see the same files, in
the same order: regular files under a root, sorted by relative POSIX path, minus hidden
entries (``.git``, ``.env``...) and whatever ``.sourceignore`` files exclude (gitignore
syntax, each file's patterns relative to its own directory, as in Flux).

This module must never read anything outside the root: a symlink is read only when it
resolves to a regular file inside the root; one leading outside (or dangling) is refused
when it looks like a manifest and skipped otherwise. Symlinked directories are never
followed, so a walk cannot loop or escape. (A file swapped for a symlink *while* a walk
runs is outside what this check can see; artifacts are expected to be at rest.)
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pathspec

from gitops.errors import ManifestError

__all__ = [
    "IGNORE_FILE",
    "MANIFEST_SUFFIXES",
    "TreeFile",
    "file_sha256",
    "is_manifest_path",
    "tree_digest",
    "walk",
]

#: File suffixes read as manifests (case-sensitive, as kubectl does).
MANIFEST_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".json")

#: Name of the ignore files honoured in every directory of a tree.
IGNORE_FILE = ".sourceignore"

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class TreeFile:
    """One walked file: its POSIX path relative to the root and where to read it.

    ``path`` is absolute; for an in-root symlink it is the file the link resolves to.
    """

    relpath: str
    path: Path


def is_manifest_path(name: str) -> bool:
    """True when ``name`` ends in a manifest suffix (``.yaml``, ``.yml``, ``.json``)."""
    return name.endswith(MANIFEST_SUFFIXES)


@dataclass(frozen=True, slots=True)
class _IgnoreRules:
    base: str  # directory holding the .sourceignore, relative to the root ("" at the root)
    spec: pathspec.GitIgnoreSpec


class _Step(NamedTuple):
    """A pending walk step: a file to yield or a directory to list."""

    key: str  # relative path, with "/" appended for directories
    rel: str
    abspath: str
    is_dir: bool
    rules: tuple[_IgnoreRules, ...]


def walk(root: str | os.PathLike[str]) -> Iterator[TreeFile]:
    """Yield the files under ``root`` in sorted relative-path order.

    Hidden entries and ``.sourceignore``'d ones are skipped; see the module docstring
    for symlinks. Raises :class:`~gitops.errors.ManifestError` (naming the path relative
    to the root) for a manifest-named symlink leading outside the root or dangling, an
    unreadable directory or an invalid ``.sourceignore``.
    """
    real_root = os.path.realpath(os.fspath(root))
    inside = real_root if real_root.endswith(os.sep) else real_root + os.sep
    # Depth-first with children sorted by key ("name/" for directories) yields files
    # in the global lexicographic order of their relative paths.
    stack = [_Step("", "", real_root, True, ())]
    while stack:
        step = stack.pop()
        if not step.is_dir:
            yield TreeFile(step.rel, Path(step.abspath))
            continue
        rules = step.rules + _load_rules(step.abspath, step.rel, inside)
        children = list(_children(step.abspath, step.rel, rules, inside))
        children.sort(key=_step_key, reverse=True)
        stack.extend(children)


def _step_key(step: _Step) -> str:
    return step.key


def _children(
    abspath: str, rel: str, rules: tuple[_IgnoreRules, ...], inside: str
) -> Iterator[_Step]:
    try:
        with os.scandir(abspath) as entries:
            # Sorted so that errors, too, come out in a deterministic order.
            listed = sorted(entries, key=_entry_name)
    except OSError as exc:
        raise ManifestError(rel or ".", f"cannot read directory: {exc.strerror}") from exc
    for entry in listed:
        name = entry.name
        if name.startswith("."):
            continue
        child = f"{rel}/{name}" if rel else name
        try:
            if entry.is_symlink():
                if _ignored(rules, child, is_dir=False):
                    continue
                target = _symlink_target(entry.path, child, inside)
                if target is not None:
                    yield _Step(child, child, target, False, ())
            elif entry.is_dir(follow_symlinks=False):
                if not _ignored(rules, child, is_dir=True):
                    yield _Step(child + "/", child, entry.path, True, rules)
            elif entry.is_file(follow_symlinks=False) and not _ignored(rules, child, is_dir=False):
                yield _Step(child, child, entry.path, False, ())
        except OSError as exc:
            raise ManifestError(child, f"cannot read: {exc.strerror}") from exc


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


#: Files some renderer reads: a link among them leading outside or nowhere is an error,
#: never silently skipped (a skipped entry file renders nothing, and prune would follow).
_RENDERED_SUFFIXES = (*MANIFEST_SUFFIXES, ".jsonnet", ".libsonnet")


def _symlink_target(link: str, rel: str, inside: str) -> str | None:
    """The in-root regular file a symlink resolves to, or None to skip it.

    Raises ManifestError for a link named as a file a renderer reads (a manifest, a
    Jsonnet file) that leads outside or nowhere.
    """
    target = os.path.realpath(link)
    if not target.startswith(inside):
        if rel.endswith(_RENDERED_SUFFIXES):
            raise ManifestError(rel, "symlink leads outside the source root")
        return None
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:  # dangling, or a loop of links
        if rel.endswith(_RENDERED_SUFFIXES):
            reason = "does not exist" if isinstance(exc, FileNotFoundError) else exc.strerror
            raise ManifestError(rel, f"symlink cannot be followed: its target {reason}") from exc
        return None
    # Links to directories are not followed; links to devices or FIFOs are not read.
    return target if stat.S_ISREG(mode) else None


def _ignored(rules: tuple[_IgnoreRules, ...], rel: str, *, is_dir: bool) -> bool:
    """Gitignore semantics: the deepest decisive pattern wins, negations included."""
    ignored = False
    suffix = "/" if is_dir else ""
    for rule in rules:
        sub = rel[len(rule.base) + 1 :] if rule.base else rel
        include = rule.spec.check_file(sub + suffix).include
        if include is not None:
            ignored = include
    return ignored


def _load_rules(abspath: str, rel: str, inside: str) -> tuple[_IgnoreRules, ...]:
    path = os.path.join(abspath, IGNORE_FILE)
    where = f"{rel}/{IGNORE_FILE}" if rel else IGNORE_FILE
    try:
        if os.path.islink(path):
            resolved = os.path.realpath(path)
            if not resolved.startswith(inside) or not os.path.isfile(resolved):
                return ()
            path = resolved
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return ()
    except IsADirectoryError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(where, f"cannot read ignore file: {exc}") from exc
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as exc:  # GitWildMatchPatternError: an invalid pattern
        raise ManifestError(where, f"invalid pattern: {exc}") from exc
    return (_IgnoreRules(rel, spec),)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(root: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` over the sorted ``(relpath, sha256 of content)`` of the walked files.

    Changes iff a walked file's name or content changes; hidden and ignored files do
    not count. Raises ManifestError like :func:`walk`.
    """
    digest = hashlib.sha256()
    for item in walk(root):
        try:
            content = file_sha256(item.path)
        except OSError as exc:
            raise ManifestError(item.relpath, f"cannot read: {exc.strerror}") from exc
        digest.update(os.fsencode(item.relpath))
        digest.update(b"\0")
        digest.update(content.encode("ascii"))
        digest.update(b"\n")
    return f"sha256:{digest.hexdigest()}"
