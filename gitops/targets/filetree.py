"""The file-tree target (``dir:PATH``): live state as one YAML file per resource.

Layout under the root (every path is derived from the :class:`ResourceKey` alone)::

    <namespace>/<Kind>[.<group>]/<name>.yaml    namespaced objects
    _cluster/<Kind>[.<group>]/<name>.yaml       cluster-scoped objects
    .gitops/inventory/<name>.json               inventories (``Inventory.to_dict()``)
    .gitops/dirs.json                           ledger: the folders this target created

The folder of a kind is ``ResourceKey.group_kind`` with the kind's case kept
(``web/Deployment.apps/frontend.yaml``): lowercasing would make ``Foo`` and ``foo``
collide and the mapping irreversible. Characters unsafe in a file name (``/``, ``%``,
control characters, a leading ``.``; also ``.`` inside a kind and a leading ``_`` in a
namespace) are percent-encoded, so distinct keys map to distinct paths, no resource
maps into ``.gitops`` or ``_cluster``, and :func:`key_for_path` inverts
:func:`path_for_key`. A name too long for one file name (over 255 bytes) is split
into folders ending in ``%`` (``a...%/b...%/c.yaml``). On a case-insensitive file
system, keys that differ only by case share a file: use a case-sensitive one.

Writes are atomic (temporary file in the same folder, then ``os.replace``) and walk
folders with ``O_NOFOLLOW``. This module must never follow a symbolic link when
writing or deleting, never write or delete outside the root, never touch a file it
did not derive from a key (or its own ``.gitops`` folder), and never remove a folder
it did not create and record in its ledger. (The ledger recognizes a folder by its
inode: a folder a user makes in place of one of ours, after ours was removed, is taken
for ours only if the file system hands it the same inode number.)

Thread safety: one lock per root (shared by every instance in the process) serializes
``apply`` and ``delete``, so folder creation, folder removal and the ledger stay
consistent; ``live`` and the inventory calls need no lock (files are replaced
atomically). Separate processes must not write the same tree at the same time.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Self

import yaml

from gitops.errors import (
    ApplyError,
    InputError,
    InvalidURLError,
    TargetError,
    UnreachableError,
)
from gitops.model import DriftMode, DriftPolicy, Inventory, Resource, ResourceKey, split_api_version
from gitops.targets.base import Target

__all__ = ["FileTreeTarget", "key_for_path", "path_for_key"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# -- key <-> path mapping ------------------------------------------------------------------

_CLUSTER = "_cluster"
_SUFFIX = ".yaml"
_NAME_MAX = 255  # bytes in one file name (NAME_MAX on Linux, macOS, Windows)
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
    if _size(quoted) + len(_SUFFIX) <= _NAME_MAX:
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
        if _size(part) > _NAME_MAX:
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


# -- file-system primitives ----------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_META = ".gitops"
_LEDGER = (_META, "dirs.json")
_INVENTORY_DIR = (_META, "inventory")


class _Refused(Exception):
    """Something other than what the target wrote is in the way (``rel`` names it)."""

    def __init__(self, rel: str, reason: str, *, symlink: bool = False) -> None:
        super().__init__(f"{rel}: {reason}")
        self.rel = rel
        self.reason = reason
        self.symlink = symlink


def _open_dir(parent_fd: int, name: str, rel: str, *, create: bool) -> tuple[int | None, bool]:
    """Open folder ``name`` without following links: ``(fd, created)``; fd None if missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd), False
    except FileNotFoundError:
        if not create:
            return None, False
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
        what = "a symbolic link" if is_link else "not a folder"
        raise _Refused(rel, f"is {what}; refusing to go through it", symlink=is_link) from exc
    try:
        os.mkdir(name, dir_fd=parent_fd)
        created = True
    except FileExistsError:  # made concurrently by someone else: theirs, not ours
        created = False
    fd, _ = _open_dir(parent_fd, name, rel, create=False)
    if fd is None:
        raise FileNotFoundError(errno.ENOENT, "folder vanished while opening it", rel)
    return fd, created


@contextlib.contextmanager
def _opened_dirs(
    root_fd: int, parts: list[str], *, create: bool
) -> Iterator[tuple[list[int], list[tuple[str, int]]]]:
    """Yield the fds of the root and each folder in ``parts`` (fewer if one is missing,
    unless ``create``) and the folders created here as ``(relative path, inode)``."""
    fds = [root_fd]
    created: list[tuple[str, int]] = []
    try:
        for depth, part in enumerate(parts, 1):
            rel = "/".join(parts[:depth])
            fd, new = _open_dir(fds[-1], part, rel, create=create)
            if fd is None:
                break
            fds.append(fd)
            if new:
                created.append((rel, os.fstat(fd).st_ino))
        yield fds, created
    finally:
        for fd in fds[1:]:
            os.close(fd)


class _Folders:
    """Folder fds opened without following links, cached for a batch of reads.

    ``fd("web/ConfigMap")`` is None when a folder on the way is missing or is a file
    (nothing can be stored below it); a symbolic link on the way raises _Refused.
    """

    def __init__(self, root_fd: int) -> None:
        self._fds: dict[str, int | None] = {"": root_fd}
        self._opened: list[int] = []

    def fd(self, rel: str) -> int | None:
        if rel in self._fds:
            return self._fds[rel]
        parent, _, name = rel.rpartition("/")
        parent_fd = self.fd(parent)
        fd = None
        if parent_fd is not None:
            try:
                fd, _ = _open_dir(parent_fd, name, rel, create=False)
            except _Refused as exc:
                if exc.symlink:
                    raise
            if fd is not None:
                self._opened.append(fd)
        self._fds[rel] = fd
        return fd

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in self._opened:
            os.close(fd)
        self._opened.clear()


def _check_replaceable(dir_fd: int, name: str, rel: str) -> bool:
    """True if ``name`` is a regular file, False if absent; _Refused for anything else."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise _Refused(rel, "is a symbolic link, not a file this target wrote", symlink=True)
    if not stat.S_ISREG(mode):
        raise _Refused(rel, "is not a regular file")
    return True


def _write_atomic(dir_fd: int, name: str, data: bytes, *, fsync: bool) -> None:
    """Replace ``name`` in ``dir_fd`` with ``data``: readers see the old or the new file."""
    temp = f".gitops-tmp-{os.getpid()}-{secrets.token_hex(6)}"  # never a resource name
    fd = os.open(temp, _TEMP_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    if fsync:
        os.fsync(dir_fd)  # make the rename itself durable


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _dump(manifest: dict[str, Any]) -> bytes:
    data = yaml.dump(
        manifest,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        encoding="utf-8",
    )
    assert isinstance(data, bytes)
    return data


def _manifest_mismatch(key: ResourceKey, manifest: Any) -> str | None:
    """Why ``manifest`` cannot be stored as ``key``, or None."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("metadata"), dict):
        return "manifest must be a mapping with a metadata mapping"
    if not isinstance(manifest.get("apiVersion"), str):
        return "manifest has no apiVersion"
    meta = manifest["metadata"]
    found = (
        split_api_version(manifest["apiVersion"])[0],
        manifest.get("kind"),
        meta.get("namespace") or "",
        meta.get("name"),
    )
    if found != tuple(key):
        return f"manifest names {ResourceKey(*map(str, found))}, not the key it was applied under"
    return None


# -- per-root shared state -----------------------------------------------------------------


@dataclass
class _RootState:
    """Shared by every instance on one root: the write lock and the cached ledger."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    dirs: dict[str, int] | None = None  # relative folder -> inode when we created it
    signature: tuple[int, int, int] | None = None  # of the ledger file the cache came from


_states: dict[tuple[int, int], _RootState] = {}
_states_lock = threading.Lock()


def _state_for(info: os.stat_result) -> _RootState:
    with _states_lock:
        return _states.setdefault((info.st_dev, info.st_ino), _RootState())


# -- the target ----------------------------------------------------------------------------


class FileTreeTarget(Target):
    """Live state as YAML files under a folder; see the module docstring for the layout.

    ``FileTreeTarget(path, create=True, fsync=False)``: the root is created when
    missing (unless ``create=False``); ``fsync=True`` makes every write durable
    before it returns. Raises UnreachableError naming the path when the root is not a
    writable folder.
    """

    scheme: ClassVar[str] = "dir"
    supports_dry_run: ClassVar[bool] = True

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, fsync: bool = False
    ) -> None:
        self._root = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self._fsync = fsync
        self._state = _state_for(_prepare_root(self._root, create=create))
        self.url = f"dir:{self._root}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``dir:PATH``, ``dir:///ABS/PATH`` or a bare path; InvalidURLError if malformed."""
        return cls(parse_url(url), **options)

    @property
    def root(self) -> Path:
        """The absolute root folder."""
        return Path(self._root)

    def drift_policy(self) -> DriftPolicy:
        """Exact comparison: a file holds exactly what was applied, so a field added by
        hand is drift (the next sync rewrites the file) and so is one removed from the
        source."""
        return DriftPolicy(DriftMode.EXACT)

    # -- reading ---------------------------------------------------------------------------

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """The stored objects among ``keys`` (``origin`` is the file's relative path).

        A missing file is absent from the result. Raises TargetError naming the file
        when one cannot be read or parsed, or is a link or folder.
        """
        found: dict[ResourceKey, Resource] = {}
        with self._open_root() as root_fd, _Folders(root_fd) as folders:
            for key in keys:
                try:
                    rel = path_for_key(key)
                except ValueError:
                    continue  # a key that names no file cannot be stored here
                data = self._read(folders, rel)
                if data is not None:
                    manifest = self._parse(rel, data)
                    found[key] = Resource(key, manifest["apiVersion"], manifest, rel)
        return found

    def _read(self, folders: _Folders, rel: str) -> bytes | None:
        """The bytes of ``rel``, or None if absent; never reads through a link."""
        folder, _, name = rel.rpartition("/")
        try:
            dir_fd = folders.fd(folder)
        except _Refused as exc:
            raise TargetError(f"{self._show(exc.rel)}: {exc.reason}") from exc
        except OSError as exc:
            raise self._read_error(folder, exc) from exc
        if dir_fd is None:
            return None
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._read_error(rel, exc) from exc
        try:
            return _read_fd(fd)
        except OSError as exc:
            raise self._read_error(rel, exc) from exc
        finally:
            os.close(fd)

    def _read_error(self, rel: str, exc: OSError) -> TargetError:
        if exc.errno == errno.ELOOP:
            return TargetError(
                f"{self._show(rel)}: is a symbolic link, not a file this target wrote"
            )
        if exc.errno == errno.EISDIR:
            return TargetError(f"{self._show(rel)}: is a folder, not a resource file")
        return TargetError(f"{self._show(rel)}: cannot read: {exc.strerror}")

    def _parse(self, rel: str, data: bytes) -> dict[str, Any]:
        try:
            manifest = yaml.load(data, Loader=_Loader)
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
            # ValueError/OverflowError: e.g. an impossible date a human typed
            raise TargetError(f"{self._show(rel)}: not valid YAML: {exc}") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("apiVersion"), str):
            raise TargetError(f"{self._show(rel)}: not a manifest (a mapping with an apiVersion)")
        return manifest

    # -- writing ---------------------------------------------------------------------------

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Write the resource's file atomically; return it as stored.

        A dry run checks the same things (the key maps to a file, the manifest names
        the key and serializes, no link, file or unwritable folder is in the way) and
        writes nothing. Raises ApplyError naming the resource and the file.
        """
        key = resource.key
        try:
            rel = path_for_key(key)
        except ValueError as exc:
            raise ApplyError(key, f"cannot be stored in a file tree: {exc}") from exc
        problem = _manifest_mismatch(key, resource.manifest)
        if problem is not None:
            raise ApplyError(key, problem)
        try:
            data = _dump(resource.manifest)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            raise ApplyError(key, f"manifest cannot be written as YAML: {exc}") from exc
        with self._errors_as(ApplyError, key, rel), self._open_root() as root_fd:
            if dry_run:
                self._check_write(root_fd, rel.split("/"))
            else:
                self._write_resource(root_fd, rel.split("/"), data)
        return Resource(key, resource.api_version, resource.manifest, rel)

    def _check_write(self, root_fd: int, parts: list[str]) -> None:
        with _opened_dirs(root_fd, parts[:-1], create=False) as (fds, _):
            deepest = "/".join(parts[: len(fds) - 1]) or "."
            if not os.access(".", os.W_OK | os.X_OK, dir_fd=fds[-1]):
                raise _Refused(deepest, "folder is not writable")
            if len(fds) == len(parts):
                _check_replaceable(fds[-1], parts[-1], "/".join(parts))

    def _write_resource(self, root_fd: int, parts: list[str], data: bytes) -> None:
        with self._state.lock, _opened_dirs(root_fd, parts[:-1], create=True) as (fds, new):
            try:
                if new:
                    self._ledger(root_fd).update(new)
                    self._save_ledger(root_fd)
                _check_replaceable(fds[-1], parts[-1], "/".join(parts))
                _write_atomic(fds[-1], parts[-1], data, fsync=self._fsync)
            except BaseException:
                if new:
                    self._undo_created(root_fd, parts[:-1], fds, {rel for rel, _ in new})
                raise

    def _undo_created(
        self, root_fd: int, dirs: list[str], fds: list[int], created: set[str]
    ) -> None:
        """Best effort after a failed write: remove the folders made for it, deepest first."""
        recorded = self._state.dirs if self._state.dirs is not None else {}
        changed = False
        for depth in range(len(dirs), 0, -1):
            rel = "/".join(dirs[:depth])
            if rel in created:
                with contextlib.suppress(OSError):
                    os.rmdir(dirs[depth - 1], dir_fd=fds[depth - 1])
                    changed = recorded.pop(rel, None) is not None or changed
        if changed:  # only a ledger that loaded (and was updated) is written back
            with contextlib.suppress(OSError, TargetError):  # report the write's own error
                self._save_ledger(root_fd)

    def delete(self, key: ResourceKey, *, dry_run: bool = False) -> bool:
        """Remove the key's file, then the folders this target created that became empty.

        Returns False if there is no such file. Refuses (ApplyError) a symbolic link
        or anything but a regular file at that path or a link on the way to it.
        """
        try:
            rel = path_for_key(key)
        except ValueError:
            return False
        parts = rel.split("/")
        with self._errors_as(ApplyError, key, rel), self._open_root() as root_fd:
            try:
                return self._delete_file(root_fd, parts, dry_run=dry_run)
            except _Refused as exc:
                if exc.symlink or exc.rel == rel:
                    raise
                return False  # a file where a folder should be: the resource cannot exist

    def _delete_file(self, root_fd: int, parts: list[str], *, dry_run: bool) -> bool:
        with self._state.lock, _opened_dirs(root_fd, parts[:-1], create=False) as (fds, _):
            if len(fds) < len(parts) or not _check_replaceable(fds[-1], parts[-1], "/".join(parts)):
                return False
            if not dry_run:
                self._ledger(root_fd)  # a corrupt ledger fails before anything is removed
                os.unlink(parts[-1], dir_fd=fds[-1])
                self._remove_empty_dirs(root_fd, parts[:-1], fds)
            return True

    def _remove_empty_dirs(self, root_fd: int, dirs: list[str], fds: list[int]) -> None:
        """Remove, deepest first, the empty folders the ledger says this target created."""
        ledger = self._ledger(root_fd)
        changed = False
        for depth in range(len(dirs), 0, -1):
            rel = "/".join(dirs[:depth])
            if rel not in ledger:
                break
            if os.fstat(fds[depth]).st_ino != ledger[rel]:  # replaced by a user's folder
                del ledger[rel]
                changed = True
                break
            try:
                os.rmdir(dirs[depth - 1], dir_fd=fds[depth - 1])
            except FileNotFoundError:
                pass
            except OSError:  # not empty: someone else's files live there
                break
            del ledger[rel]
            changed = True
        if changed:
            self._save_ledger(root_fd)

    # -- ledger of created folders (call with the state lock held) -----------------------

    def _ledger(self, root_fd: int) -> dict[str, int]:
        state = self._state
        signature = _signature(root_fd, _LEDGER)
        if state.dirs is None or signature != state.signature:
            state.dirs = {} if signature is None else self._read_ledger(root_fd)
            state.signature = signature
        return state.dirs

    def _read_ledger(self, root_fd: int) -> dict[str, int]:
        rel = "/".join(_LEDGER)
        with _Folders(root_fd) as folders:
            data = self._read(folders, rel)
        if data is None:  # removed since it was looked at
            return {}
        try:
            dirs = json.loads(data)["dirs"]
            if not all(isinstance(k, str) and type(v) is int for k, v in dirs.items()):
                raise ValueError("entries must map folder paths to inode numbers")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TargetError(
                f"{self._show(rel)}: corrupt ledger of created folders ({exc}); removing it "
                "is safe (the target then leaves the folders it made in place)"
            ) from exc
        return dict(dirs)

    def _save_ledger(self, root_fd: int) -> None:
        state = self._state
        body = {"version": 1, "dirs": dict(sorted((state.dirs or {}).items()))}
        self._write_meta(root_fd, _LEDGER, _json_bytes(body))
        state.signature = _signature(root_fd, _LEDGER)

    def _write_meta(self, root_fd: int, parts: tuple[str, ...], data: bytes) -> None:
        with _opened_dirs(root_fd, list(parts[:-1]), create=True) as (fds, _):
            _write_atomic(fds[-1], parts[-1], data, fsync=self._fsync)

    # -- inventories -----------------------------------------------------------------------

    def read_inventory(self, name: str) -> Inventory | None:
        """The named inventory, or None if none was written; TargetError if it is corrupt."""
        parts = _inventory_parts(name)
        rel = "/".join(parts)
        with self._open_root() as root_fd, _Folders(root_fd) as folders:
            data = self._read(folders, rel)
        if data is None:
            return None
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            return Inventory.from_dict(document)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
            raise TargetError(f"{self._show(rel)}: corrupt inventory: {exc}") from exc

    def write_inventory(self, name: str, inventory: Inventory) -> None:
        """Store ``inventory.to_dict()`` as JSON, atomically; TargetError naming the file."""
        parts = _inventory_parts(name)
        data = _json_bytes(inventory.to_dict())
        with self._errors_as(TargetError, None, "/".join(parts)), self._open_root() as root_fd:
            self._write_meta(root_fd, parts, data)

    # -- helpers ---------------------------------------------------------------------------

    def _show(self, rel: str) -> str:
        return os.path.join(self._root, rel)

    @contextlib.contextmanager
    def _open_root(self) -> Iterator[int]:
        try:
            fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UnreachableError(
                f"{self._root}: cannot open the target folder: {exc.strerror}"
            ) from exc
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _errors_as(
        self, error: type[TargetError], key: ResourceKey | None, rel: str
    ) -> Iterator[None]:
        """Translate OSError and _Refused into ``error`` naming the file (and key)."""
        try:
            yield
        except _Refused as exc:
            raise self._error(error, key, f"{self._show(exc.rel)}: {exc.reason}") from exc
        except OSError as exc:  # exc.filename is relative to some folder fd: name the file
            raise self._error(error, key, f"{self._show(rel)}: {exc.strerror or exc}") from exc

    @staticmethod
    def _error(error: type[TargetError], key: ResourceKey | None, message: str) -> TargetError:
        if issubclass(error, ApplyError):
            return error(key, message)
        return error(message)


def parse_url(url: str) -> str:
    """The path a ``dir:PATH``, ``dir:///abs/path`` URL or bare path names, taken literally.

    The same grammar as the directory source's. Raises InvalidURLError for another
    scheme, a host (``dir://host/...``) or an empty path.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or not re.fullmatch(r"[A-Za-z][A-Za-z0-9.+-]*", scheme):
        rest = url  # a bare path, as kubectl accepts
    elif scheme.lower() != "dir":
        raise InvalidURLError(url, f"not a file-tree URL (scheme {scheme!r}, expected 'dir')")
    elif rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise InvalidURLError(
                url, "a dir: URL names a local path: dir:PATH, dir:/abs/path or dir:///abs/path"
            )
    if not rest:
        raise InvalidURLError(url, "empty path (use dir:. for the current directory)")
    return rest


def _prepare_root(root: str, *, create: bool) -> os.stat_result:
    """Create the root if asked; return its stat. UnreachableError if it is unusable."""
    try:
        if create:
            os.makedirs(root, exist_ok=True)
        info = os.stat(root)
    except FileExistsError as exc:
        raise UnreachableError(f"{root}: is not a folder") from exc
    except OSError as exc:
        raise UnreachableError(f"{root}: cannot use as a target folder: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise UnreachableError(f"{root}: is not a folder")
    if not os.access(root, os.W_OK | os.X_OK):
        raise UnreachableError(f"{root}: folder is not writable")
    return info


def _inventory_parts(name: str) -> tuple[str, str, str]:
    if not name:
        raise InputError("inventory name must not be empty")
    file_name = _quote(name) + ".json"
    if _size(file_name) > _NAME_MAX:
        raise InputError(f"inventory name {name[:40]!r}... is too long for a file name")
    return (*_INVENTORY_DIR, file_name)


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def _signature(root_fd: int, parts: tuple[str, str]) -> tuple[int, int, int] | None:
    """Identity of a metadata file: every atomic replace gives a new inode."""
    with _Folders(root_fd) as folders:
        dir_fd = folders.fd(parts[0])
        if dir_fd is None:
            return None
        try:
            info = os.stat(parts[1], dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
    return info.st_ino, info.st_mtime_ns, info.st_size
