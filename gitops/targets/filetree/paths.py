"""Where each resource of a file-tree target lives: the key <-> path mapping.

Every path is derived from the :class:`ResourceKey` alone (see the package docstring for
the layout), and :func:`key_for_path` inverts :func:`path_for_key`. Pure functions: this
module never touches the file system.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import PurePosixPath

from gitops.errors import InputError
from gitops.model import ResourceKey

__all__ = ["NAME_MAX", "inventory_file", "inventory_name", "key_for_path", "path_for_key"]

_CLUSTER = "_cluster"
_SUFFIX = ".yaml"
NAME_MAX = 255  # bytes in one file name (NAME_MAX on Linux, macOS, Windows)
_CHUNK_BYTES = 200  # folder pieces of an over-long name
_UNSAFE = re.compile(r"[\x00-\x1f\x7f%/]")
_UNSAFE_IN_KIND = re.compile(r"[\x00-\x1f\x7f%/.]")  # '.' separates kind from group
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_ATOM = re.compile(r"%[0-9A-F]{2}|.", re.DOTALL)


def _escape_char(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


def _quote(text: str, unsafe: re.Pattern[str] = _UNSAFE, lead: str = ".") -> str:
    """Percent-encode ``text`` for one file name; ``lead`` characters are escaped first."""
    out = unsafe.sub(_escape_char, text)
    if out[:1] in tuple(lead):
        out = f"%{ord(out[0]):02X}{out[1:]}"
    return out


def _unquote(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _size(segment: str) -> int:
    """Bytes of ``segment`` in a file name; ValueError if it cannot be encoded (surrogates)."""
    if segment.isascii():
        return len(segment)
    try:
        return len(segment.encode())
    except UnicodeEncodeError as exc:
        raise ValueError(f"{segment!r} cannot be encoded as UTF-8") from exc


def _name_parts(quoted: str) -> list[str]:
    """``[name.yaml]``, or folder pieces ending in ``%`` then the file for a long name."""
    if _size(quoted) + len(_SUFFIX) <= NAME_MAX:
        return [quoted + _SUFFIX]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for atom in _ATOM.findall(quoted):  # never split an escape
        atom_size = _size(atom)
        if size + atom_size > _CHUNK_BYTES:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(atom)
        size += atom_size
    chunks.append("".join(current))
    # A piece must not start with '.' ('..' would climb out); decoding is unaffected.
    chunks[1:] = ["%2E" + c[1:] if c.startswith(".") else c for c in chunks[1:]]
    return [c + "%" for c in chunks[:-1]] + [chunks[-1] + _SUFFIX]


@functools.lru_cache(maxsize=1 << 16)
def path_for_key(key: ResourceKey) -> str:
    """The file of ``key``, relative to the root, with ``/`` separators.

    Raises ValueError when the key cannot name a file: an empty kind or name, text
    that is not encodable, or a namespace or group/kind over 255 bytes.
    """
    group, kind, namespace, name = key
    if not kind or not name:
        raise ValueError(f"{key!r}: kind and name must not be empty")
    ns_part = _quote(namespace, lead="._") if namespace else _CLUSTER
    kind_part = _quote(kind, _UNSAFE_IN_KIND)
    if group:
        kind_part = f"{kind_part}.{_quote(group, lead='')}"
    for part in (ns_part, kind_part):
        if _size(part) > NAME_MAX:
            raise ValueError(f"{key!r}: {part[:40]}... is too long for a file name")
    return "/".join((ns_part, kind_part, *_name_parts(_quote(name))))


def key_for_path(path: str | os.PathLike[str]) -> ResourceKey:
    """The key whose file is ``path`` (relative to the root); inverse of :func:`path_for_key`.

    Raises ValueError for a path :func:`path_for_key` never produces (a user's file,
    the ``.gitops`` folder, a non-canonical spelling such as ``%61.yaml``).
    """
    rel = PurePosixPath(path)
    parts = rel.parts
    if (
        len(parts) < 3
        or rel.is_absolute()
        or not parts[-1].endswith(_SUFFIX)
        or not all(p.endswith("%") for p in parts[2:-1])
    ):
        raise ValueError(f"{os.fspath(path)}: not a resource file of a file-tree target")
    kind_part, _, group_part = parts[1].partition(".")
    encoded_name = "".join(p[:-1] for p in parts[2:-1]) + parts[-1][: -len(_SUFFIX)]
    key = ResourceKey(
        _unquote(group_part),
        _unquote(kind_part),
        "" if parts[0] == _CLUSTER else _unquote(parts[0]),
        _unquote(encoded_name),
    )
    try:
        canonical = path_for_key(key)
    except ValueError:
        canonical = ""
    if canonical != "/".join(parts):
        raise ValueError(f"{os.fspath(path)}: not a resource file of a file-tree target")
    return key



_INVENTORY_SUFFIX = ".json"


def inventory_file(name: str) -> str:
    """The file name (in ``.gitops/inventory``) of the inventory called ``name``.

    Raises InputError for an empty name or one too long for a file name.
    """
    if not name:
        raise InputError("inventory name must not be empty")
    file_name = _quote(name) + _INVENTORY_SUFFIX
    if _size(file_name) > NAME_MAX:
        raise InputError(f"inventory name {name[:40]!r}... is too long for a file name")
    return file_name


def inventory_name(file_name: str) -> str | None:
    """The inventory a file in ``.gitops/inventory`` stores; None for any other file."""
    if not file_name.endswith(_INVENTORY_SUFFIX):
        return None
    name = _unquote(file_name[: -len(_INVENTORY_SUFFIX)])
    try:
        canonical = inventory_file(name)
    except (InputError, ValueError):
        return None
    return name if canonical == file_name else None
