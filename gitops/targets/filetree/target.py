"""The file-tree target itself: reads through the stat cache, atomic writes, the ledger of
created folders, inventories, the sync lock and ownership across inventories.

See the package docstring for the layout and the guarantees; this module must never
follow a symbolic link, write outside the root, touch a file it did not derive from a
key (or its own ``.gitops`` folder), remove a folder it did not create, or create
anything when only asked to read.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

from gitops.errors import ApplyError, TargetError, UnreachableError
from gitops.model import DriftMode, DriftPolicy, Inventory, Resource, ResourceKey, split_api_version
from gitops.options import PluginOptions, validate_options
from gitops.targets.base import Target
from gitops.targets.filetree import fs, locking
from gitops.targets.filetree.fs import Folders, Refused
from gitops.targets.filetree.options import FileTreeOptions, parse_url
from gitops.targets.filetree.paths import inventory_file, inventory_name, path_for_key
from gitops.targets.filetree.statcache import Batch, Signature, StatCache, signature

__all__ = ["FileTreeTarget"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_META = ".gitops"
_LEDGER = (_META, "dirs.json")
_INVENTORY_DIR = (_META, "inventory")
_STATUS_DIR = (_META, "status")
_LOCK = (_META, locking.LOCK_FILE)


class _Vanished(Exception):
    """The file was removed between its stat and its opening: it is simply absent."""


# -- per-root shared state -----------------------------------------------------------------


@dataclass
class _RootState:
    """Shared by every instance on one root: the write lock and the cached ledger."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    dirs: dict[str, int] | None = None  # relative folder -> inode when we created it
    signature: Signature | None = None  # of the ledger file the cache came from


#: weak: a root's state lives as long as a target open on it (a long-lived operator whose
#: applications come and go must not keep one per folder it ever wrote)
_states: weakref.WeakValueDictionary[tuple[int, int], _RootState] = weakref.WeakValueDictionary()
_states_lock = threading.Lock()


def _state_for(info: os.stat_result) -> _RootState:
    with _states_lock:
        state = _states.get((info.st_dev, info.st_ino))
        if state is None:
            state = _states[(info.st_dev, info.st_ino)] = _RootState()
        return state


# -- the target ----------------------------------------------------------------------------


class FileTreeTarget(Target):
    """Live state as YAML files under a folder; see :mod:`gitops.targets.filetree`.

    ``FileTreeTarget(path, create=True, fsync=False, adopt=False, lock_timeout=2.0)``,
    or ``FileTreeTarget(path, FileTreeOptions(...))``: keywords are validated by
    :class:`~gitops.targets.filetree.options.FileTreeOptions` (InvalidURLError naming
    the target for an unknown or invalid one). Opening never creates anything: a missing
    root reads as empty and is created by the first write or :meth:`lock` (with
    ``create=False`` it must exist already). Raises UnreachableError naming the path when
    the root is a file, is not writable, or is missing with ``create=False``.
    """

    scheme: ClassVar[str] = "dir"
    supports_dry_run: ClassVar[bool] = True
    supports_status: ClassVar[bool] = True
    Options: ClassVar[type[PluginOptions]] = FileTreeOptions

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: FileTreeOptions | None = None,
        **keywords: Any,
    ) -> None:
        self._root = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.url = f"dir:{self._root}"
        if options is None:
            options = validate_options(FileTreeOptions, self.url, keywords)
        elif keywords:
            raise TypeError("give FileTreeTarget either an options object or keywords")
        self.options: FileTreeOptions = options
        info = self._check_root()
        self._state_cache = None if info is None else _state_for(info)
        self._live: StatCache[Resource] = StatCache()
        self._inventories: StatCache[Inventory] = StatCache()
        self._swept: set[tuple[int, int]] = set()  # folders swept of dead writers' temp files

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """The options in a ``dir:`` URL's query (``dir:out?fsync=true``); InvalidURLError
        for a malformed URL or an unknown, repeated or malformed option."""
        return dict(parse_url(url)[1])

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Open the folder ``url`` names with validated ``options``."""
        assert isinstance(options, FileTreeOptions)
        return cls(parse_url(url)[0], options)

    @property
    def root(self) -> Path:
        """The absolute root folder."""
        return Path(self._root)

    @property
    def adopt(self) -> bool:
        """Whether the engine may take objects other inventories list (see :meth:`owners`)."""
        return self.options.adopt

    def drift_policy(self) -> DriftPolicy:
        """Exact comparison: a file holds exactly what was applied, so a field added by
        hand is drift (the next sync rewrites the file) and so is one removed from the
        source."""
        return DriftPolicy(DriftMode.EXACT)

    # -- reading ---------------------------------------------------------------------------

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """The stored objects among ``keys`` (``origin`` is the file's relative path).

        A missing file (or root) is absent from the result. A file whose stat signature
        is unchanged since the previous call (or the one before) is not read again: the
        *same* Resource object is returned (see
        :mod:`~gitops.targets.filetree.statcache` for why a hand edit is still always
        seen). Callers must not mutate what is returned. Raises TargetError naming the
        file when one cannot be read or parsed, or is a link, folder or special file.
        """
        found: dict[ResourceKey, Resource] = {}
        with self._open_root(write=False) as root_fd:
            if root_fd is None:
                return found
            with Folders(root_fd) as folders, self._live.batch() as batch:
                hit, lstat = batch.hit, os.stat  # the loop runs once per object: keep it lean
                for key in keys:
                    where = _location(key)
                    if where is None:
                        continue  # a key that names no file cannot be stored here
                    folder, name, rel = where
                    dir_fd = self._folder(folders, folder)
                    if dir_fd is None:
                        continue
                    try:
                        info = lstat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        raise self._read_error(rel, exc) from exc
                    value = hit(key, info)
                    if value is None:
                        value = self._read_resource(batch, key, dir_fd, name, rel, info)
                    if value is not None:
                        found[key] = value
        return found

    def _read_resource(
        self,
        batch: Batch[Resource],
        key: ResourceKey,
        dir_fd: int,
        name: str,
        rel: str,
        info: os.stat_result,
    ) -> Resource | None:
        """Read (and, unless only touched, parse) a file the cache cannot vouch for."""
        if not stat.S_ISREG(info.st_mode):
            raise self._not_a_file(rel, info.st_mode)
        read = functools.partial(self._read_file, dir_fd, name, rel)
        parse = functools.partial(self._parse_resource, key, rel)
        try:
            return batch.get(key, info, read, parse)
        except _Vanished:
            return None

    def _folder(self, folders: Folders, rel: str) -> int | None:
        """The fd of folder ``rel``; None if missing; TargetError for a link on the way."""
        try:
            return folders.fds.get(rel) or folders.fd(rel)
        except Refused as exc:
            raise self._failure(exc.rel, exc.reason) from exc
        except OSError as exc:
            raise self._read_error(rel, exc) from exc

    def _lstat(self, dir_fd: int, name: str, rel: str) -> os.stat_result | None:
        """The stat of a regular file ``name`` (never through a link); None if absent."""
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._read_error(rel, exc) from exc
        if not stat.S_ISREG(info.st_mode):
            raise self._not_a_file(rel, info.st_mode)
        return info

    def _read_file(self, dir_fd: int, name: str, rel: str) -> tuple[os.stat_result, bytes]:
        """``(fstat, bytes)`` of regular file ``name``, the stat taken before reading."""
        try:
            fd = os.open(name, fs.READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise _Vanished(rel) from None
        except OSError as exc:
            raise self._read_error(rel, exc) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise self._not_a_file(rel, info.st_mode)
            return info, fs.read_fd(fd)
        except OSError as exc:
            raise self._read_error(rel, exc) from exc
        finally:
            os.close(fd)

    def _read(self, folders: Folders, rel: str) -> bytes | None:
        """The bytes of ``rel``, or None if absent; never reads through a link."""
        folder, _, name = rel.rpartition("/")
        dir_fd = self._folder(folders, folder)
        if dir_fd is None:
            return None
        try:
            return self._read_file(dir_fd, name, rel)[1]
        except _Vanished:
            return None

    def _read_error(self, rel: str, exc: OSError) -> TargetError:
        if exc.errno == errno.ELOOP:
            return self._failure(rel, "is a symbolic link, not a file this target wrote")
        if exc.errno == errno.EISDIR:
            return self._failure(rel, "is a folder, not a resource file")
        return self._failure(rel, f"cannot read: {exc.strerror}")

    def _not_a_file(self, rel: str, mode: int) -> TargetError:
        if stat.S_ISLNK(mode):
            return self._failure(rel, "is a symbolic link, not a file this target wrote")
        if stat.S_ISDIR(mode):
            return self._failure(rel, "is a folder, not a resource file")
        return self._failure(rel, "is not a regular file")

    def _parse_resource(self, key: ResourceKey, rel: str, data: bytes) -> Resource:
        try:
            manifest = yaml.load(data, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise self._failure(rel, f"not valid YAML{_yaml_where(exc)}") from exc
        except (ValueError, OverflowError, RecursionError) as exc:
            # e.g. an impossible date a human typed; the message could quote the value
            raise self._failure(rel, f"not valid YAML ({type(exc).__name__})") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("apiVersion"), str):
            raise self._failure(rel, "not a manifest (a mapping with an apiVersion)")
        return Resource(key, manifest["apiVersion"], manifest, rel)

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
            raise ApplyError(key, f"cannot be stored in a file tree: {exc}", url=self.url) from exc
        problem = _manifest_mismatch(key, resource.manifest)
        if problem is not None:
            raise ApplyError(key, problem, url=self.url)
        try:
            data = _dump(resource.manifest)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            detail = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
            raise ApplyError(
                key, f"manifest cannot be written as YAML: {detail or type(exc).__name__}",
                url=self.url,
            ) from exc
        parts = rel.split("/")
        with self._errors_as(ApplyError, key, rel), self._open_root(write=not dry_run) as root_fd:
            if root_fd is None:
                self._check_root_creatable()
            elif dry_run:
                self._check_write(root_fd, parts)
            else:
                self._write_resource(root_fd, parts, data)
        return Resource(key, resource.api_version, resource.manifest, rel)

    def _check_write(self, root_fd: int, parts: list[str]) -> None:
        with fs.opened_dirs(root_fd, parts[:-1], create=False) as (fds, _):
            deepest = "/".join(parts[: len(fds) - 1]) or "."
            if not os.access(".", os.W_OK | os.X_OK, dir_fd=fds[-1]):
                raise Refused(deepest, "folder is not writable")
            if len(fds) == len(parts):
                fs.check_replaceable(fds[-1], parts[-1], "/".join(parts))

    def _write_resource(self, root_fd: int, parts: list[str], data: bytes) -> None:
        state = self._state(root_fd)
        with state.lock, fs.opened_dirs(root_fd, parts[:-1], create=True) as (fds, new):
            try:
                if new:
                    self._ledger(root_fd).update(new)
                    self._save_ledger(root_fd)
                fs.check_replaceable(fds[-1], parts[-1], "/".join(parts))
                self._sweep(fds[-1])
                fs.write_atomic(fds[-1], parts[-1], data, fsync=self.options.fsync)
            except BaseException:
                if new:
                    self._undo_created(root_fd, parts[:-1], fds, {rel for rel, _ in new})
                raise

    def _undo_created(
        self, root_fd: int, dirs: list[str], fds: list[int], created: set[str]
    ) -> None:
        """Best effort after a failed write: remove the folders made for it, deepest first."""
        state = self._state(root_fd)
        recorded = state.dirs if state.dirs is not None else {}
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

        Returns False if there is no such file (or no root). Refuses (ApplyError) a
        symbolic link or anything but a regular file at that path or a link on the way.
        """
        try:
            rel = path_for_key(key)
        except ValueError:
            return False
        parts = rel.split("/")
        with self._errors_as(ApplyError, key, rel), self._open_root(write=False) as root_fd:
            if root_fd is None:
                return False
            try:
                return self._delete_file(root_fd, parts, dry_run=dry_run)
            except Refused as exc:
                if exc.symlink or exc.rel == rel:
                    raise
                return False  # a file where a folder should be: the resource cannot exist

    def _delete_file(self, root_fd: int, parts: list[str], *, dry_run: bool) -> bool:
        state = self._state(root_fd)
        with state.lock, fs.opened_dirs(root_fd, parts[:-1], create=False) as (fds, _):
            if len(fds) < len(parts):
                return False
            if not fs.check_replaceable(fds[-1], parts[-1], "/".join(parts)):
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
            self._sweep(fds[depth])  # a dead writer's temp file must not keep it alive
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

    def _sweep(self, dir_fd: int) -> None:
        """Remove dead writers' temp files from a folder, once per folder and sync."""
        info = os.fstat(dir_fd)
        folder = (info.st_dev, info.st_ino)
        if folder not in self._swept:
            fs.sweep_temps(dir_fd)
            self._swept.add(folder)

    # -- ledger of created folders (call with the state lock held) -----------------------

    def _state(self, root_fd: int) -> _RootState:
        if self._state_cache is None:  # the root did not exist when this target was opened
            self._state_cache = _state_for(os.fstat(root_fd))
        return self._state_cache

    def _ledger(self, root_fd: int) -> dict[str, int]:
        state = self._state(root_fd)
        current = _meta_signature(root_fd, _LEDGER)
        if state.dirs is None or current != state.signature:
            state.dirs = {} if current is None else self._read_ledger(root_fd)
            state.signature = current
        return state.dirs

    def _read_ledger(self, root_fd: int) -> dict[str, int]:
        rel = "/".join(_LEDGER)
        with Folders(root_fd) as folders:
            data = self._read(folders, rel)
        if data is None:  # removed since it was looked at
            return {}
        try:
            dirs = json.loads(data)["dirs"]
            if not all(isinstance(k, str) and type(v) is int for k, v in dirs.items()):
                raise ValueError("entries must map folder paths to inode numbers")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._failure(
                rel,
                f"corrupt ledger of created folders ({type(exc).__name__}); removing it is "
                "safe (the target then leaves the folders it made in place)",
            ) from exc
        return dict(dirs)

    def _save_ledger(self, root_fd: int) -> None:
        state = self._state(root_fd)
        body = {"version": 1, "dirs": dict(sorted((state.dirs or {}).items()))}
        self._write_meta(root_fd, _LEDGER, _json_bytes(body))
        state.signature = _meta_signature(root_fd, _LEDGER)

    def _write_meta(self, root_fd: int, parts: tuple[str, ...], data: bytes) -> None:
        with fs.opened_dirs(root_fd, list(parts[:-1]), create=True) as (fds, _):
            self._sweep(fds[-1])
            fs.write_atomic(fds[-1], parts[-1], data, fsync=self.options.fsync)

    # -- inventories -----------------------------------------------------------------------

    def read_inventory(self, name: str) -> Inventory | None:
        """The named inventory, or None if none was written; TargetError if it is corrupt.

        An inventory file unchanged since the last read is not parsed again (the same
        Inventory object is returned; do not mutate it).
        """
        file_name = inventory_file(name)
        with self._inventory_folder() as dir_fd:
            found = {} if dir_fd is None else self._inventories_in(dir_fd, [file_name])
        return found.get(file_name)

    @contextlib.contextmanager
    def _inventory_folder(self) -> Iterator[int | None]:
        """The fd of ``.gitops/inventory``; None if it (or the root) is missing."""
        with self._open_root(write=False) as root_fd:
            if root_fd is None:
                yield None
                return
            with Folders(root_fd) as folders:
                yield self._folder(folders, "/".join(_INVENTORY_DIR))

    def _inventories_in(self, dir_fd: int, file_names: list[str]) -> dict[str, Inventory]:
        """The inventories stored as ``file_names`` in folder ``dir_fd`` (absent: left out)."""
        found: dict[str, Inventory] = {}
        with self._inventories.batch() as batch:
            for file_name in file_names:
                rel = "/".join((*_INVENTORY_DIR, file_name))
                info = self._lstat(dir_fd, file_name, rel)
                if info is None:
                    continue
                read = functools.partial(self._read_file, dir_fd, file_name, rel)
                parse = functools.partial(self._parse_inventory, rel)
                try:
                    found[file_name] = batch.get(file_name, info, read, parse)
                except _Vanished:
                    continue
        return found

    def _parse_inventory(self, rel: str, data: bytes) -> Inventory:
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            return Inventory.from_dict(document)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
            raise self._failure(rel, f"corrupt inventory: {exc}") from exc

    def write_inventory(self, name: str, inventory: Inventory) -> None:
        """Store ``inventory.to_dict()`` as JSON, atomically; TargetError naming the file.

        Creates the root (and ``.gitops/inventory``) when missing.
        """
        parts = (*_INVENTORY_DIR, inventory_file(name))
        data = _json_bytes(inventory.to_dict())
        rel = "/".join(parts)
        with self._errors_as(TargetError, None, rel), self._open_root(write=True) as root_fd:
            assert root_fd is not None
            self._write_meta(root_fd, parts, data)

    def read_status(self, inventory: str) -> dict[str, Any] | None:
        """The operator's record of ``inventory`` (``.gitops/status/<name>.json``), or None.

        TargetError naming the file when it is not a JSON object.
        """
        rel = "/".join((*_STATUS_DIR, inventory_file(inventory)))
        with self._open_root(write=False) as root_fd:
            if root_fd is None:
                return None
            with Folders(root_fd) as folders:
                data = self._read(folders, rel)
        if data is None:
            return None
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise self._failure(rel, f"corrupt status record: {exc}") from exc
        if not isinstance(document, dict):
            raise self._failure(rel, "corrupt status record: not a JSON object")
        return document

    def write_status(self, inventory: str, status: Mapping[str, Any]) -> None:
        """Store the operator's record of ``inventory`` as JSON, atomically."""
        parts = (*_STATUS_DIR, inventory_file(inventory))
        with self._errors_as(TargetError, None, "/".join(parts)), \
                self._open_root(write=True) as root_fd:
            assert root_fd is not None
            self._write_meta(root_fd, parts, _json_bytes(dict(status)))

    def forget(self, inventory: str) -> bool:
        """Remove ``.gitops/inventory/<name>.json`` and ``.gitops/status/<name>.json``."""
        found = False
        with self._open_root(write=False) as root_fd:
            if root_fd is None:
                return False
            for folder in (_INVENTORY_DIR, _STATUS_DIR):
                rel = "/".join((*folder, inventory_file(inventory)))
                with self._errors_as(TargetError, None, rel), \
                        fs.opened_dirs(root_fd, list(folder), create=False) as (fds, _):
                    if len(fds) <= len(folder):
                        continue
                    try:
                        os.unlink(inventory_file(inventory), dir_fd=fds[-1])
                        found = True
                    except FileNotFoundError:
                        pass
        return found

    def owners(self, keys: Iterable[ResourceKey], inventory: str) -> Mapping[ResourceKey, str]:
        """The keys among ``keys`` that inventories other than ``inventory`` list: key ->
        that inventory's name (the first by name when several list it).

        Reads every other inventory in ``.gitops/inventory``; one unchanged since the
        last call is not parsed again. Files that are not inventories are ignored; a
        corrupt inventory raises TargetError naming it (ownership cannot be known).
        Needs no lock; a missing root owns nothing.
        """
        wanted = set(keys)
        own = inventory_file(inventory)
        found: dict[ResourceKey, str] = {}
        if not wanted:
            return found
        with self._inventory_folder() as dir_fd:
            if dir_fd is None:
                return found
            others = self._inventory_files(dir_fd, own)
            inventories = self._inventories_in(dir_fd, sorted(others))
        for file_name in sorted(inventories, key=others.__getitem__):
            for key in wanted.intersection(inventories[file_name].entries):
                found.setdefault(key, others[file_name])
        return found

    def _inventory_files(self, dir_fd: int, own: str) -> dict[str, str]:
        """File name -> inventory name of every inventory in ``dir_fd`` but ``own``."""
        try:
            names = os.listdir(dir_fd)
        except OSError as exc:
            raise self._read_error("/".join(_INVENTORY_DIR), exc) from exc
        files = {}
        for file_name in names:
            name = inventory_name(file_name) if file_name != own else None
            if name is not None:
                files[file_name] = name
        return files

    # -- the sync lock ---------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, inventory: str) -> Iterator[None]:
        """Hold this root for one sync: an exclusive ``flock`` on ``.gitops/lock``.

        One sync per root at a time, whatever its inventory (they share the folder
        ledger and must see each other's inventories). Waits up to ``lock_timeout``
        seconds for another holder, then raises ConflictError: ``another sync of ROOT is
        running (pid N, inventory 'NAME')``. Creates the root and ``.gitops`` when
        missing; TargetError naming the lock file if it cannot be opened. The kernel
        releases the lock when the holder exits, even on ``kill -9``. Not re-entrant;
        reads (``live``, ``read_inventory``, ``owners``) never need it.
        """
        with contextlib.ExitStack() as stack:
            with self._errors_as(TargetError, None, "/".join(_LOCK)):
                root_fd = stack.enter_context(self._open_root(write=True))
                assert root_fd is not None
                fds, _ = stack.enter_context(fs.opened_dirs(root_fd, [_META], create=True))
                stack.enter_context(
                    locking.hold(
                        fds[-1], root=self._root, url=self.url, inventory=inventory,
                        timeout=self.options.lock_timeout,
                    )
                )
            self._swept.clear()  # a new sync sweeps each folder it writes to again
            yield

    # -- helpers ---------------------------------------------------------------------------

    def _show(self, rel: str) -> str:
        return os.path.join(self._root, rel)

    def _failure(self, rel: str, reason: str) -> TargetError:
        return TargetError(f"{self._show(rel)}: {reason}", url=self.url)

    def _check_root(self) -> os.stat_result | None:
        """The root's stat, or None if it does not exist yet (and may be created)."""
        try:
            info = os.stat(self._root)
        except FileNotFoundError:
            if not self.options.create:
                raise UnreachableError(
                    f"{self._root}: no such folder (and create=False)", url=self.url
                ) from None
            return None
        except NotADirectoryError:
            raise UnreachableError(f"{self._root}: is not a folder", url=self.url) from None
        except OSError as exc:
            raise UnreachableError(
                f"{self._root}: cannot use as a target folder: {exc.strerror}", url=self.url
            ) from exc
        if not stat.S_ISDIR(info.st_mode):
            raise UnreachableError(f"{self._root}: is not a folder", url=self.url)
        if not os.access(self._root, os.W_OK | os.X_OK):
            raise UnreachableError(f"{self._root}: folder is not writable", url=self.url)
        return info

    def _check_root_creatable(self) -> None:
        """For a dry run on a missing root: UnreachableError unless a write could create it."""
        parent = os.path.dirname(self._root)
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise UnreachableError(
                f"{self._root}: cannot be created ({parent} is not a writable folder)",
                url=self.url,
            )

    @contextlib.contextmanager
    def _open_root(self, *, write: bool) -> Iterator[int | None]:
        """The root's fd; None for a missing root when only reading (nothing is created).

        A write creates a missing root (unless ``create=False``). UnreachableError when
        the root cannot be opened.
        """
        try:
            fd = self._open_root_fd()
        except FileNotFoundError as exc:
            if write and self.options.create:
                try:
                    os.makedirs(self._root, exist_ok=True)
                    fd = self._open_root_fd()
                except OSError as again:
                    raise self._unreachable(again) from again
            elif self.options.create:
                fd = None
            else:
                raise self._unreachable(exc) from exc
        except OSError as exc:
            raise self._unreachable(exc) from exc
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def _open_root_fd(self) -> int:
        return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _unreachable(self, exc: OSError) -> UnreachableError:
        if isinstance(exc, NotADirectoryError | FileExistsError):
            return UnreachableError(f"{self._root}: is not a folder", url=self.url)
        return UnreachableError(
            f"{self._root}: cannot open the target folder: {exc.strerror}", url=self.url
        )

    @contextlib.contextmanager
    def _errors_as(
        self, error: type[TargetError], key: ResourceKey | None, rel: str
    ) -> Iterator[None]:
        """Translate OSError and Refused into ``error`` naming the file (and key)."""
        try:
            yield
        except Refused as exc:
            raise self._error(error, key, f"{self._show(exc.rel)}: {exc.reason}") from exc
        except OSError as exc:  # exc.filename is relative to some folder fd: name the file
            raise self._error(error, key, f"{self._show(rel)}: {exc.strerror or exc}") from exc

    def _error(self, error: type[TargetError], key: ResourceKey | None, message: str) -> TargetError:
        if issubclass(error, ApplyError):
            return error(key, message, url=self.url)
        return error(message, url=self.url)


@functools.lru_cache(maxsize=1 << 16)
def _location(key: ResourceKey) -> tuple[str, str, str] | None:
    """``(folder, file name, relative path)`` of ``key``'s file; None if it names none."""
    try:
        rel = path_for_key(key)
    except ValueError:
        return None
    folder, _, name = rel.rpartition("/")
    return folder, name, rel


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


def _yaml_where(exc: yaml.YAMLError) -> str:
    """Where a YAML error is, and what kind, without quoting the file (it may hold secrets)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    if isinstance(problem, str):  # drop quoted input: "found character '\t' ..."
        return f"{where}: {_QUOTED.sub('...', problem)}"
    return f"{where} ({type(exc).__name__})"


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


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


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def _meta_signature(root_fd: int, parts: tuple[str, str]) -> Signature | None:
    """Identity of a metadata file: every atomic replace gives a new inode."""
    with Folders(root_fd) as folders:
        dir_fd = folders.fd(parts[0])
        if dir_fd is None:
            return None
        try:
            info = os.stat(parts[1], dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
    return signature(info)
