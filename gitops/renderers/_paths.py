"""Path confinement and bounded reads shared by the renderers that run tools.

A renderer may read only inside the fetched tree (``RenderContext.tree``). These helpers
resolve symlinks before deciding, name paths relative to the tree in messages, and read
files with a size bound. They never write and never follow a path outside the tree.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from gitops.errors import ManifestError
from gitops.model import RenderContext

__all__ = ["Tree", "read_bounded"]


class Tree:
    """The folder a render may read, resolved once: containment tests and relative names."""

    def __init__(self, root: Path, context: RenderContext | None) -> None:
        tree = context.tree if context is not None and context.tree is not None else root
        self.path = Path(tree)
        self.real = os.path.realpath(tree)
        self._prefix = self.real if self.real.endswith(os.sep) else self.real + os.sep
        if not os.path.isdir(self.real):
            raise ManifestError(os.fspath(tree), "not a directory")
        self.root_real = os.path.realpath(root)
        if not self.contains(self.root_real):
            raise ManifestError(os.fspath(root), "the folder to render lies outside the source tree")

    def contains(self, real: str) -> bool:
        """Whether the resolved path ``real`` is the tree or lies below it."""
        return real == self.real or real.startswith(self._prefix)

    def rel(self, path: str | os.PathLike[str]) -> str:
        """``path`` (resolved, inside the tree) as a POSIX path relative to the tree."""
        real = os.path.realpath(path)
        if not self.contains(real):
            return os.fspath(path)
        rel = os.path.relpath(real, self.real)
        return "." if rel == "." else rel.replace(os.sep, "/")

    def scrub(self, text: str) -> str:
        """``text`` with the tree's absolute location removed (paths become relative)."""
        for prefix in {self._prefix, os.fspath(self.path).rstrip(os.sep) + os.sep}:
            text = text.replace(prefix, "")
        return text.replace(self.real, ".")

    def digest(self, folders: Iterable[str]) -> str:
        """Hex digest over every file below ``folders`` (resolved, inside the tree).

        Hidden files count (a tool reads ``.env`` files); symlinks count by the content
        they lead to when inside the tree and by their target text otherwise (a tool
        confined to the tree cannot read them). Content, never times.
        """
        digest = hashlib.sha256()
        for top in _outermost(folders):
            for base, dirs, files in os.walk(top):
                dirs.sort()
                if ".git" in dirs:
                    dirs.remove(".git")
                for name in sorted(files):
                    path = os.path.join(base, name)
                    digest.update(os.fsencode(os.path.relpath(path, self.real)) + b"\0")
                    digest.update(self._file_digest(path) + b"\n")
        return digest.hexdigest()

    def _file_digest(self, path: str) -> bytes:
        real = os.path.realpath(path)
        try:
            if not self.contains(real) or not stat.S_ISREG(os.stat(real).st_mode):
                return b"link:" + os.fsencode(os.readlink(path) if os.path.islink(path) else "")
            with open(real, "rb") as handle:
                return hashlib.file_digest(handle, "sha256").digest()
        except OSError:
            return b"unreadable"


def _outermost(folders: Iterable[str]) -> list[str]:
    """The folders of ``folders`` that are not inside another one of them, sorted."""
    kept: list[str] = []
    for folder in sorted(set(folders)):
        if not any(folder == k or folder.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(folder)
    return kept


def read_bounded(path: str | os.PathLike[str], where: str, limit: int) -> bytes:
    """The bytes of ``path``; ManifestError naming ``where`` if unreadable or over ``limit``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ManifestError(where, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise ManifestError(where, f"file is over the limit of {limit} bytes")
    return data
