"""The local artifact cache: content-addressed, read-only trees, bounded in size and age.

Remote sources (Git, OCI) materialize each revision once into
``<cache>/artifacts/<key>/`` and hand the engine that read-only tree. Materializing is
atomic (fill a temporary folder, then rename) and guarded by a file lock, so concurrent
processes fetching the same revision never see a half-written tree. The cache root is
``$GITOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/gitops``, else ``~/.cache/gitops``.
This module never fetches anything itself.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

__all__ = ["ArtifactStore", "cache_root"]

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


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


def remove_tree(root: Path) -> None:
    """Delete a (possibly read-only) tree."""
    if root.exists():
        _make_writable(root)
        shutil.rmtree(root)


class ArtifactStore:
    """Read-only artifact trees under ``root/artifacts``, one per key."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.artifacts = self.root / "artifacts"
        self.locks = self.root / "locks"
        self._tmp = self.root / "tmp"

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

    def materialize(self, key: str, fill: Callable[[Path], None], *,
                    fill_makes_read_only: bool = False) -> Path:
        """Return the artifact ``key``, calling ``fill(tmpdir)`` to create it if missing.

        ``fill`` writes the tree into an empty folder; on success the folder is made
        read-only and renamed into place atomically; on failure it is removed. With
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
            tmp = Path(tempfile.mkdtemp(prefix=f"{key[:40]}.", dir=self._tmp))
            final = self.path(key)
            try:
                fill(tmp)
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
            return final

    def prune(self, *, max_bytes: int | None = None, max_age: float | None = None,
              keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove artifacts unused for ``max_age`` seconds, then the least recently used
        until the cache is under ``max_bytes``; never the keys in ``keep``. Returns removed keys.
        """
        if not self.artifacts.is_dir():
            return []
        now = time.time()
        entries = []
        for path in self.artifacts.iterdir():
            if not path.is_dir():
                continue
            used = path.stat().st_mtime
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()
                       and not f.is_symlink())
            entries.append((used, size, path))
        entries.sort()
        removed: list[str] = []
        total = sum(size for _, size, _ in entries)
        for used, size, path in entries:
            if path.name in keep:
                continue
            too_old = max_age is not None and now - used > max_age
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                continue
            remove_tree(path)
            total -= size
            removed.append(path.name)
        return removed
