"""The local artifact cache: content-addressed, read-only trees, bounded in size and age.

Remote sources (Git, OCI) materialize each revision once into
``<cache>/artifacts/<key>/`` and hand the engine that read-only tree. Materializing is
atomic (fill a temporary folder, then rename) and guarded by a file lock, so concurrent
processes fetching the same revision never see a half-written tree. The cache root is
``$GITOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/gitops``, else ``~/.cache/gitops``.

Every temporary name the cache writes says which process made it
(:func:`temp_name`: ``<prefix>.gitops-tmp-<pid>-<host>-<random>``), so a write can sweep
what a killed process left behind (:func:`sweep_temp`) without touching the work of a
live one. An artifact's size is measured once and remembered (artifacts never change),
so applying the bounds after every fetch costs a directory listing, not a walk of every
cached file. This module never fetches anything itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

__all__ = ["ArtifactStore", "cache_root", "pid_alive", "still_cached", "sweep_temp", "temp_name"]

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_TEMP_MARK = ".gitops-tmp-"
_TEMP_RE = re.compile(r"\.gitops-tmp-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]+$")
# Processes of another machine (or container) sharing the cache have pids that mean
# nothing here: only this host's temporary names are ever swept.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_name(prefix: str = "") -> str:
    """A fresh temporary name naming this process: ``<prefix>.gitops-tmp-<pid>-<host>-<hex>``."""
    return f"{prefix}{_TEMP_MARK}{os.getpid()}-{_HOST}-{secrets.token_hex(6)}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one we may not signal counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp(directory: Path) -> list[str]:
    """Remove the temporary entries in ``directory`` whose process is dead; return their names.

    Only names made by :func:`temp_name` on this host are considered, and never those of
    a live process (this one included): a write in progress is left alone. Best effort:
    an entry that cannot be removed is skipped.
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_RE.search(name) if _TEMP_MARK in name else None
        if match is None or match.group("host") != _HOST or pid_alive(int(match.group("pid"))):
            continue
        path = directory / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)
            else:
                path.unlink()
            removed.append(name)
    return removed


def sweep_unused(folder: Path, retention: float, *, marker: Path,
                 every: float = 3600.0) -> None:
    """Delete the files directly in ``folder`` not modified for ``retention`` seconds, at
    most once per ``every`` seconds (``marker``'s modification time decides; it is
    touched). Names starting with ``.`` (keys, markers) are kept; an entry that cannot be
    read or removed is skipped. For caches that grow one file per key and must not keep
    the keys nobody uses any more (stale credentials among them)."""
    now = time.time()
    with contextlib.suppress(FileNotFoundError):
        if now - marker.stat().st_mtime < every:
            return
    marker.touch(mode=0o600)
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > retention:
                    os.unlink(entry.path)


def cache_root() -> Path:
    """Where gitops keeps caches on this machine (see the module docstring)."""
    explicit = os.environ.get("GITOPS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gitops"


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o555)
    os.chmod(root, 0o555)


def _make_writable(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


def still_cached(tree: Path) -> bool:
    """Whether an artifact tree handed out earlier is still in the cache, marking it used
    (for least-recently-used pruning): one system call."""
    try:
        os.utime(tree, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError:  # a read-only cache: cannot mark it, can still use it
        return tree.is_dir()
    return True


def remove_tree(root: Path) -> None:
    """Delete a (possibly read-only) tree."""
    if root.exists():
        _make_writable(root)
        shutil.rmtree(root)


def tree_size(root: Path) -> int:
    """Bytes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    stack = [os.fspath(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


class ArtifactStore:
    """Read-only artifact trees under ``root/artifacts``, one per key."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.artifacts = self.root / "artifacts"
        self.locks = self.root / "locks"
        self._tmp = self.root / "tmp"
        self._sizes = self.root / "sizes"

    def _check_key(self, key: str) -> str:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid artifact key {key!r}")
        return key

    def path(self, key: str) -> Path:
        """Where the artifact ``key`` lives (whether or not it exists yet)."""
        return self.artifacts / self._check_key(key)

    def get(self, key: str) -> Path | None:
        """The artifact's path if it is complete in the cache, touching it for LRU pruning."""
        path = self.path(key)
        if not path.is_dir():
            return None
        os.utime(path, follow_symlinks=False)
        return path

    @contextmanager
    def lock(self, name: str, timeout: float = 300.0) -> Iterator[None]:
        """An inter-process lock named ``name`` (e.g. one per remote repository)."""
        self.locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.locks / f"{self._check_key(name)}.lock"), timeout=timeout):
            yield

    def materialize(self, key: str, fill: Callable[[Path], int | None], *,
                    fill_makes_read_only: bool = False) -> Path:
        """Return the artifact ``key``, calling ``fill(tmpdir)`` to create it if missing.

        ``fill`` writes the tree into an empty folder and may return its size in bytes
        (regular files, as :func:`tree_size` counts; else it is measured when first
        needed); on success the folder is made read-only and renamed into place
        atomically; on failure it is removed. With
        ``fill_makes_read_only``, ``fill`` promises to leave every file (``0444``) and
        directory (``0555``, the folder itself included) read-only, and the pass over
        the tree that would do it is skipped.
        """
        existing = self.get(key)
        if existing is not None:
            return existing
        with self.lock(f"artifact-{key}"[:200]):
            existing = self.get(key)
            if existing is not None:
                return existing
            self._tmp.mkdir(parents=True, exist_ok=True)
            self.artifacts.mkdir(parents=True, exist_ok=True)
            sweep_temp(self._tmp)  # what killed processes left half-written
            tmp = self._tmp / temp_name(key[:40])
            tmp.mkdir(0o700)
            final = self.path(key)
            try:
                size = fill(tmp)
                if not fill_makes_read_only:
                    _make_read_only(tmp)
                # moving a directory to another parent rewrites its "..": the kernel wants
                # write access to the directory itself (root does not need it)
                os.chmod(tmp, 0o755)
                os.rename(tmp, final)
            except BaseException:
                remove_tree(tmp)
                raise
            os.chmod(final, 0o555)
            if size is not None:
                self._remember_size(key, size)
            return final

    def size(self, key: str) -> int:
        """Bytes of the artifact ``key``, measured once and remembered (artifacts never change)."""
        record = self._sizes / self._check_key(key)
        try:
            return int(record.read_text(encoding="ascii"))
        except (OSError, ValueError):
            pass
        size = tree_size(self.path(key))
        self._remember_size(key, size)
        return size

    def _remember_size(self, key: str, size: int) -> None:
        with contextlib.suppress(OSError):
            self._sizes.mkdir(parents=True, exist_ok=True)
            sweep_temp(self._sizes)
            tmp = self._sizes / temp_name(key[:40])
            tmp.write_text(str(size), encoding="ascii")
            os.replace(tmp, self._sizes / key)

    def remove(self, key: str) -> bool:
        """Delete the artifact ``key``; False if it was not there (another process won).

        The tree is first renamed away in one step, so a reader either finds the whole
        artifact or none, and two processes pruning at once never both delete it.
        """
        path = self.path(key)
        self._tmp.mkdir(parents=True, exist_ok=True)
        trash = self._tmp / temp_name(f"removed-{key[:40]}")
        try:
            os.chmod(path, 0o755)  # renaming a directory to another parent rewrites its ".."
            os.rename(path, trash)
        except FileNotFoundError:
            return False
        remove_tree(trash)
        with contextlib.suppress(OSError):
            os.unlink(self._sizes / key)
        return True

    def prune(self, *, max_bytes: int | None = None, max_age: float | None = None,
              keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove artifacts unused for ``max_age`` seconds, then the least recently used
        until the cache is under ``max_bytes``; never the keys in ``keep``. Returns removed keys.

        Cheap enough to run after every fetch: one listing of the artifacts, and each
        artifact's size is measured only the first time it is seen.
        """
        if not self.artifacts.is_dir():
            return []
        now = time.time()
        entries = []
        for path in self.artifacts.iterdir():
            try:
                info = path.lstat()
                if not stat.S_ISDIR(info.st_mode) or not _KEY_RE.match(path.name):
                    continue
                entries.append((info.st_mtime, self.size(path.name), path.name))
            except OSError:  # removed meanwhile by another process
                continue
        entries.sort()
        removed: list[str] = []
        total = sum(size for _, size, _ in entries)
        for used, size, key in entries:
            if key in keep:
                continue
            too_old = max_age is not None and now - used > max_age
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                continue
            total -= size
            if self.remove(key):
                removed.append(key)
        return removed
