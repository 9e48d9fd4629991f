"""Rewrite the YAML fields Flux's setter comments mark, and nothing else.

A marker is a comment at the end of the line of a scalar mapping value or list item::

    image: ghcr.io/acme/web:1.0.0 # {"$imagepolicy": "apps:web"}
    tag: "1.0.0"                  # {"$imagepolicy": "apps:web:tag"}
    - ghcr.io/acme/web:1.0.0      # {"$imagepolicy": "apps:web"}

``NS:NAME`` writes ``IMAGE:TAG`` (``IMAGE:TAG@sha256:...`` when digests are pinned),
``NS:NAME:tag`` the tag (``TAG@sha256:...`` pinned), ``NS:NAME:name`` the image name,
and ``NS:NAME:digest`` the digest alone. The edit is textual: only the characters of
the marked value change (a quoted value keeps its quote character), so comments, order,
indentation, line endings and trailing whitespace stay byte for byte; PyYAML's node
positions say where each value is, so a ``#`` inside a string is never taken for a
marker. A file without markers is not parsed at all. This module never touches Git and
never follows a symlink.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import yaml

from gitops.errors import InputError, ManifestError

__all__ = [
    "FileUpdate",
    "ImageChoice",
    "RewriteResult",
    "SetterChange",
    "UnknownMarker",
    "rewrite",
    "update_tree",
]

log = logging.getLogger(__name__)

_KEY = "$imagepolicy"
_BOM = "\ufeff"
_MARKER_RE = re.compile(r"#[ \t]*(\{[^\r\n#]*\$imagepolicy[^\r\n#]*\})[ \t]*\r?$", re.MULTILINE)
_FIELDS = ("tag", "name", "digest")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = (".yaml", ".yml")
_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_YAML12_NUMBER = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                            r"|0x[0-9a-fA-F]+|0o[0-7]+")


class ImageChoice(Protocol):
    """What a policy chose (``gitops.images.latest.LatestImage`` is one)."""

    @property
    def image(self) -> str: ...

    @property
    def tag(self) -> str: ...

    @property
    def digest(self) -> str | None: ...


@dataclass(frozen=True)
class SetterChange:
    """One marked value rewritten: ``line`` is 1-based, ``policy`` the marker's ``NS:NAME``."""

    line: int
    policy: str
    old: str
    new: str
    #: what the marker sets: "image" (the whole reference), "tag", "name" or "digest"
    field: str = "image"


@dataclass(frozen=True)
class UnknownMarker:
    """A marker naming a policy that was not given: left alone and reported."""

    line: int
    policy: str


@dataclass(frozen=True)
class RewriteResult:
    """The rewritten text and what changed in it (``text`` is the input when nothing did)."""

    text: str
    changes: tuple[SetterChange, ...] = ()
    unknown: tuple[UnknownMarker, ...] = ()


@dataclass(frozen=True)
class FileUpdate:
    """A file with markers: ``path`` relative to the tree root (POSIX), what changed."""

    path: str
    changes: tuple[SetterChange, ...]
    unknown: tuple[UnknownMarker, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class _Marker:
    line: int  # 0-based
    offset: int  # of the '#'
    policy: str
    field: str


@dataclass(frozen=True)
class _Slot:
    """A value a marker can mark: a mapping value or a sequence item (lines 0-based)."""

    node: yaml.Node
    line: int  # of its first character
    end_line: int  # of its end
    key_line: int | None  # of its mapping key, for a mapping value


class _Lines:
    """Line numbers of text positions, counting ``\\n`` only, as the markers' lines are
    counted (PyYAML's own line numbers also break at U+0085, U+2028 and U+2029)."""

    def __init__(self, text: str) -> None:
        self._breaks = [m.start() for m in re.finditer("\n", text)]

    def of(self, index: int) -> int:
        """The 0-based line of position ``index``."""
        return bisect.bisect_left(self._breaks, index)


def rewrite(
    text: str,
    choices: Mapping[str, ImageChoice],
    *,
    pin_digest: bool = False,
    source: str = "<text>",
) -> RewriteResult:
    """Set every marked value to its policy's choice; everything else stays as it is.

    ``choices`` maps ``NS:NAME`` to what that policy chose. ``source`` names the file in
    errors. Raises ManifestError for a malformed marker, a marker on something that is
    not a one-line scalar, YAML that does not parse, or (with ``pin_digest``) a choice
    without a digest.
    """
    if _KEY not in text:
        return RewriteResult(text)
    if text.startswith(_BOM):  # PyYAML's positions do not count it: edit after it
        result = rewrite(text[1:], choices, pin_digest=pin_digest, source=source)
        return RewriteResult(_BOM + result.text, result.changes, result.unknown)
    lines = _Lines(text)
    markers = _markers(text, lines, source)
    if not markers:
        return RewriteResult(text)
    slots, spans = _slots(text, lines, source)
    on_line: defaultdict[int, list[_Slot]] = defaultdict(list)  # what claims each line
    for slot in slots:
        on_line[slot.line].append(slot)
        if slot.key_line is not None and slot.key_line != slot.line:
            on_line[slot.key_line].append(slot)
    span_starts = [start for start, _ in spans]
    edits: list[tuple[int, int, str]] = []
    changes: list[SetterChange] = []
    unknown: list[UnknownMarker] = []
    for marker in markers:
        inside = bisect.bisect_right(span_starts, marker.offset) - 1
        if inside >= 0 and marker.offset < spans[inside][1]:
            continue  # the '#' is inside a string, not a comment
        node = _marked_node(text, marker, on_line.get(marker.line, []), source)
        if node is None:
            continue  # a comment on a line of its own marks nothing
        choice = choices.get(marker.policy)
        if choice is None:
            unknown.append(UnknownMarker(marker.line + 1, marker.policy))
            continue
        new = _value(choice, marker, pin_digest, source)
        if new == node.value:
            continue
        edits.append((node.start_mark.index, node.end_mark.index, _render(new, node)))
        changes.append(SetterChange(marker.line + 1, marker.policy, str(node.value), new,
                                    marker.field))
    for policy in sorted({u.policy for u in unknown}):
        where = ", ".join(str(u.line) for u in unknown if u.policy == policy)
        log.warning("%s: line %s: no image policy %s; marker left alone", source, where, policy)
    if not edits:
        return RewriteResult(text, (), tuple(unknown))
    pieces, done = [], 0
    for start, end, value in sorted(edits):
        pieces += [text[done:start], value]
        done = end
    out = "".join(pieces) + text[done:]
    _check(out, changes, source)
    return RewriteResult(out, tuple(changes), tuple(unknown))


def update_tree(
    root: Path,
    path: str,
    choices: Mapping[str, ImageChoice],
    *,
    pin_digest: bool = False,
) -> list[FileUpdate]:
    """Rewrite the marked values of every ``*.yaml``/``*.yml`` file under ``root/path``.

    Symlinks (to files or folders) are never followed and ``.git`` is skipped; ``path``
    must stay inside ``root``. Only files whose text changes are written. Returns the
    files that hold markers (changed, or naming an unknown policy), sorted by path.
    """
    start = _inside(root, path)
    updates: list[FileUpdate] = []
    for file in _yaml_files(start):
        relpath = file.relative_to(root).as_posix()
        data = file.read_bytes()
        if _KEY.encode() not in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(relpath, "holds image policy markers but is not UTF-8") from None
        result = rewrite(text, choices, pin_digest=pin_digest, source=relpath)
        if result.changes:
            with open(file, "wb") as handle:  # in place: the file's mode is kept
                handle.write(result.text.encode("utf-8"))
        if result.changes or result.unknown:
            updates.append(FileUpdate(relpath, result.changes, result.unknown))
    return sorted(updates, key=lambda u: u.path)


# -- markers and the nodes they mark -----------------------------------------------------


def _markers(text: str, lines: _Lines, source: str) -> list[_Marker]:
    found = []
    for match in _MARKER_RE.finditer(text):
        line = lines.of(match.start())
        try:
            data = json.loads(match.group(1))
        except ValueError:
            raise ManifestError(source, f"line {line + 1}: malformed image policy marker "
                                        f"{match.group(1)} (expected "
                                        '{"$imagepolicy": "NAMESPACE:NAME[:tag|:name]"})') from None
        if not isinstance(data, dict) or _KEY not in data:
            continue
        found.append(_parse_marker(data[_KEY], line, match.start(), source))
    return found


def _parse_marker(value: object, line: int, offset: int, source: str) -> _Marker:
    parts = value.split(":") if isinstance(value, str) else []
    field = "image"
    if len(parts) == 3 and parts[2] in _FIELDS:
        field = parts.pop()
    if len(parts) != 2 or not all(parts):
        raise ManifestError(source, f"line {line + 1}: image policy marker {value!r} is not "
                                    "NAMESPACE:NAME, NAMESPACE:NAME:tag, NAMESPACE:NAME:name "
                                    "or NAMESPACE:NAME:digest")
    return _Marker(line, offset, ":".join(parts), field)


def _compose(text: str, source: str) -> Iterator[yaml.Node]:
    try:
        yield from (doc for doc in yaml.compose_all(text, Loader=_Loader) if doc is not None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ManifestError(source, f"{where}invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(source, f"invalid YAML: {exc}") from None


def _slots(text: str, lines: _Lines, source: str
           ) -> tuple[list[_Slot], list[tuple[int, int]]]:
    """Every mapping value and sequence item, and the spans of all scalars (sorted)."""
    slots: list[_Slot] = []
    spans: list[tuple[int, int]] = []
    seen: set[int] = set()
    stack = list(_compose(text, source))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue  # an alias: the anchored node was visited
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            start = node.start_mark.index
            if node.style in ("|", ">"):  # its header line may hold a comment
                start = text.find("\n", start) + 1 or node.end_mark.index
            spans.append((start, node.end_mark.index))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not node.flow_style:  # values inside {...} are not markable
                    slots.append(_slot(value, lines, lines.of(key.start_mark.index)))
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            if not node.flow_style:
                slots += [_slot(item, lines, None) for item in node.value]
            stack += node.value
    return slots, sorted(spans)


def _slot(node: yaml.Node, lines: _Lines, key_line: int | None) -> _Slot:
    return _Slot(node, lines.of(node.start_mark.index), lines.of(node.end_mark.index),
                 key_line)


def _marked_node(
    text: str, marker: _Marker, slots: Sequence[_Slot], source: str
) -> yaml.ScalarNode | None:
    """The value ``marker`` marks among ``slots`` (those claiming its line), or None."""
    line = marker.line
    scalars = [
        s.node for s in slots
        if isinstance(s.node, yaml.ScalarNode) and s.line == line
        and s.end_line == line and s.node.end_mark.index <= marker.offset
        and s.node.style not in ("|", ">")
    ]
    claims = [s.node for s in slots if s.line == line or s.key_line == line]
    where = f"line {line + 1}: image policy marker {marker.policy}"
    if len(scalars) > 1:
        raise ManifestError(source, f"{where} is on a line with more than one value")
    if not scalars:
        if claims:
            raise ManifestError(source, f"{where} marks {_kind(claims[-1])}, not a plain "
                                        "scalar value")
        return None
    node = scalars[0]
    assert isinstance(node, yaml.ScalarNode)
    start, end = node.start_mark.index, node.end_mark.index
    if start == end:
        raise ManifestError(source, f"{where} marks an empty value")
    if text[start] in "&!":
        raise ManifestError(source, f"{where} marks a value with an anchor or tag")
    return node


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return "a block scalar"
    return "a value on another line"


# -- values ------------------------------------------------------------------------------


def _value(choice: ImageChoice, marker: _Marker, pin_digest: bool, source: str) -> str:
    digest = choice.digest
    if (pin_digest or marker.field == "digest") and not digest:
        raise ManifestError(source, f"line {marker.line + 1}: image policy {marker.policy} "
                                    "chose no digest to pin (scan with digests)")
    pin = f"@{digest}" if pin_digest and digest else ""
    if marker.field == "tag":
        return choice.tag + pin
    if marker.field == "name":
        return choice.image
    if marker.field == "digest":
        return str(digest)
    return f"{choice.image}:{choice.tag}{pin}"


def _render(value: str, node: yaml.ScalarNode) -> str:
    """``value`` written in ``node``'s style; a plain string whose new value YAML would
    read as something else (``1.10``, ``1700000000``, ``true``) is double-quoted, so it
    stays a string."""
    style = node.style
    if not style and node.tag == _STR and not _reads_as_string(value):
        style = '"'
    if style == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    return value


def _reads_as_string(value: str) -> bool:
    """A plain ``value`` is a string to PyYAML (YAML 1.1) and to Kubernetes' YAML 1.2
    readers (where ``1e3`` and ``0o17`` are numbers too)."""
    resolved = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return resolved == _STR and not _YAML12_NUMBER.fullmatch(value)


def _check(text: str, changes: list[SetterChange], source: str) -> None:
    """The rewritten text must parse, with each marked value read back as written."""
    expected = {(c.line - 1, c.new) for c in changes}
    found = {(s.line, s.node.value) for s in _slots(text, _Lines(text), source)[0]
             if isinstance(s.node, yaml.ScalarNode)}
    missing = sorted(expected - found)
    if missing:
        line, value = missing[0]
        raise ManifestError(source, f"line {line + 1}: {value!r} cannot be written as a plain "
                                    "YAML value here; quote the marked value")


# -- the tree ----------------------------------------------------------------------------


def _inside(root: Path, path: str) -> Path:
    relative = PurePosixPath(path or ".")
    if relative.is_absolute() or ".." in relative.parts:
        raise InputError(f"update path {path!r} must be relative and stay inside the repository")
    start = root / relative
    real_root = os.path.realpath(root)
    real = os.path.realpath(start)
    if os.path.commonpath([real_root, real]) != real_root:
        raise InputError(f"update path {path!r} leaves the repository (through a symlink)")
    if not start.is_dir():
        raise InputError(f"update path {path!r} is not a folder of the repository")
    return start


def _yaml_files(start: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(start, followlinks=False):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if d != ".git" and not (base / d).is_symlink())
        for name in sorted(files):
            file = base / name
            if name.endswith(_SUFFIXES) and not file.is_symlink() and file.is_file():
                yield file
