"""A tree's digest, re-reading only the files whose stat changed since the last time.

:class:`StatDigests` computes exactly :func:`gitops.tree.tree_digest` (same walk, same
bytes hashed) but remembers each file's SHA-256 under its stat key (device, inode,
size, mtime and ctime in nanoseconds). Asking again for an unchanged tree costs one walk
and one ``stat`` per file. A stat is trusted only once the file is older than
:data:`RACY_SECONDS` (file systems stamp times with a coarse clock, so a file written
twice within one tick keeps its stat while its content changed): younger files are
hashed every time, so a hand edit is always seen. Memory is bounded by the files of
the last walks. Reads only.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from gitops.errors import ManifestError
from gitops.tree import file_sha256, walk

__all__ = ["RACY_SECONDS", "StatDigests"]

#: A file modified less than this long ago is hashed again, whatever its stat says.
RACY_SECONDS = 2.0

_StatKey = tuple[int, int, int, int, int]


class StatDigests:
    """``sha256:<hex>`` of walked trees, with a stat-keyed cache of file hashes."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[_StatKey, str]] = {}
        self._seen: dict[str, tuple[_StatKey, str]] = {}

    def file(self, path: str, display: str) -> str:
        """Hex SHA-256 of one file (following a symlink), from the cache when its stat allows.

        Raises ManifestError naming ``display`` when it cannot be read.
        """
        try:
            info = os.stat(path)
            key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            known = self._hashes.get(path)
            content = known[1] if known is not None and known[0] == key else file_sha256(path)
            newest = max(info.st_mtime_ns, info.st_ctime_ns) / 1e9
            if time.time() - newest > RACY_SECONDS:
                self._seen[path] = (key, content)
            return content
        except OSError as exc:
            raise ManifestError(display, f"cannot read: {exc.strerror}") from exc

    def tree(self, root: Path) -> str:
        """What :func:`gitops.tree.tree_digest` returns for ``root``; raises like it."""
        lines = []
        for item in walk(root):
            content = self.file(os.fspath(item.path), item.relpath)
            lines.append(f"{item.relpath}\0{content}\n")
        return "sha256:" + hashlib.sha256(os.fsencode("".join(lines))).hexdigest()

    def forget_unseen(self) -> None:
        """Keep only the files looked at since the last call (bounds memory to live trees)."""
        self._hashes, self._seen = self._seen, {}
