"""The directory source: desired state read from a local directory, as it is now.

``dir:PATH`` (relative or absolute), ``dir:///abs/path`` or a bare path. A directory
has no history, so its revision is the digest of its walked content
(:func:`gitops.tree.tree_digest`, ``sha256:<hex>``): hidden and ``.sourceignore``'d
files do not count. This source never writes to the directory, never copies it and
never reads outside it (see :mod:`gitops.tree`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Self

from gitops.errors import InvalidURLError, RevisionNotFoundError, SourceError
from gitops.model import Artifact
from gitops.sources.base import Source
from gitops.tree import tree_digest

__all__ = ["DirectorySource"]

_REVISION_RE = re.compile(r"sha256:[0-9a-f]{64}")


class DirectorySource(Source):
    """A local directory; ``url`` is ``dir:<absolute path>``.

    Raises :class:`~gitops.errors.SourceError` ("no such directory") when the path
    is missing or not a directory, at opening and at every resolve.
    """

    scheme = "dir"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.fspath(path)))
        self.url = f"dir:{self.root}"
        self._check_directory()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``dir:PATH``, ``dir:///abs/path`` or a bare path (taken literally)."""
        return cls(_path_of(url), **options)

    def _check_directory(self) -> None:
        if not self.root.exists():
            raise SourceError(self.url, "no such directory")
        if not self.root.is_dir():
            raise SourceError(self.url, "no such directory: the path is not a directory")

    def resolve(self) -> str:
        """``sha256:<hex>`` of the walked files' names and contents.

        Raises SourceError when the directory is gone, and ManifestError (naming the
        file) for a manifest symlink leading outside it or an unreadable entry.
        """
        self._check_directory()
        return tree_digest(self.root)

    def fetch(self, revision: str) -> Artifact:
        """The directory itself, if its content still has digest ``revision``.

        Raises RevisionNotFoundError when it changed since ``revision`` was resolved:
        a directory keeps no old revisions.
        """
        if not _REVISION_RE.fullmatch(revision):
            raise RevisionNotFoundError(
                self.url, f"{revision!r} is not a directory revision (expected sha256:<64 hex>)"
            )
        current = self.resolve()
        if current != revision:
            raise RevisionNotFoundError(
                self.url,
                f"revision {revision} is gone: the directory changed since it was resolved "
                f"(now {current}); resolve again",
            )
        return Artifact(
            url=self.url, revision=revision, digest=current, path=self.root, metadata={}
        )


def _path_of(url: str) -> str:
    """The path a ``dir:`` URL or bare path names."""
    if not url.startswith("dir:"):
        path = url
    elif url.startswith("dir://"):
        rest = url[len("dir://") :]
        if not rest.startswith("/"):
            raise InvalidURLError(
                url, "a dir: URL names a local path: dir:PATH, dir:/abs/path or dir:///abs/path"
            )
        path = rest
    else:
        path = url[len("dir:") :]
    if not path:
        raise InvalidURLError(url, "empty path (use dir:. for the current directory)")
    return path
