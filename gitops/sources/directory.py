"""The directory source: desired state read from a local folder, or one manifest file, as it is now.

``dir:PATH`` (relative or absolute), ``dir:///abs/path`` or a bare path; a ``dir:`` URL
may end in ``#path=SUBDIR``, as Git and OCI URLs do (a bare path is taken literally,
``#`` and all). The folder given is the tree a renderer may read (``Artifact.root``,
where kustomize finds ``../../base``); ``path=`` names the folder rendered within it.

A folder has no history, so its revision is the digest of its walked content
(:func:`gitops.tree.tree_digest`, ``sha256:<hex>``): hidden and ``.sourceignore``'d
files do not count; file hashes are remembered by stat (:mod:`.statdigest`), so asking
again costs a walk, not a read. A single manifest file is a source too: its revision is
the digest of a folder holding just that file, and it is served as exactly that, a
private read-only copy in a temporary folder (removed by :meth:`DirectorySource.close`).
This source never writes to the user's folder and never reads outside what it was given.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator

from gitops.errors import InvalidURLError, ManifestError, RevisionNotFoundError, SourceError
from gitops.manifests import DEFAULT_LIMITS
from gitops.model import Artifact
from gitops.options import PluginOptions, validate_options
from gitops.sources.base import Source
from gitops.sources.fragment import fragment_options, subpath
from gitops.sources.statdigest import StatDigests
from gitops.tree import is_manifest_path

__all__ = ["DirectoryOptions", "DirectorySource"]

_REVISION_RE = re.compile(r"sha256:[0-9a-f]{64}")


class DirectoryOptions(PluginOptions):
    """Options of the directory source (``dir:PATH#path=SUBDIR`` or keyword arguments)."""

    path: str = Field(
        default="",
        description="the folder to render, relative to the folder given (which stays the "
        "tree a renderer may read: kustomize's ../base)",
    )

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        return subpath(value)


class DirectorySource(Source):
    """A local folder (or one manifest file); ``url`` is ``dir:<absolute path>[#path=SUBDIR]``.

    ``DirectorySource(location, **options)`` takes the location literally (no ``dir:``);
    ``open_source``/``from_url`` take a URL. Raises :class:`~gitops.errors.SourceError`
    ("no such directory") when the location is missing, at opening and at every resolve.
    """

    scheme = "dir"
    Options = DirectoryOptions

    #: the folder given (the tree renderers may read), or the file given
    root: Path
    #: the folder rendered: ``root``, or ``root / path`` with the ``path`` option
    path: Path

    def __init__(self, location: str | os.PathLike[str], /, **options: Any) -> None:
        shown = f"dir:{os.path.abspath(os.fspath(location))}"
        self._open(os.fspath(location), validate_options(DirectoryOptions, shown, options))

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """``#path=...`` of a ``dir:`` URL (a bare path has no options)."""
        location, fragment = _split(url)
        return fragment_options(f"dir:{os.path.abspath(location)}", fragment)

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Open the location ``url`` names with validated ``options``."""
        if not isinstance(options, DirectoryOptions):
            raise TypeError(f"{cls.__name__} takes DirectoryOptions, not {type(options).__name__}")
        source = cls.__new__(cls)
        source._open(_split(url)[0], options)
        return source

    def _open(self, location: str, options: DirectoryOptions) -> None:
        self.options = options
        self.root = Path(os.path.abspath(location))
        self.path = self.root / options.path if options.path else self.root
        self.url = f"dir:{self.root}" + (f"#path={options.path}" if options.path else "")
        self._digests = StatDigests()
        self._artifact: Artifact | None = None
        self._copies: list[Path] = []
        self._finalizer = weakref.finalize(self, _remove_all, self._copies)
        self._is_file = self.root.is_file()
        if self._is_file:
            if options.path:
                raise InvalidURLError(self.url, "path= names a folder, but the source is a file")
            if not is_manifest_path(self.root.name):
                raise SourceError(self.url, "a single-file source must be a manifest "
                                            "(.yaml, .yml or .json)")
        self._check()

    def _check(self) -> None:
        if self._is_file:
            if not self.root.is_file():
                raise SourceError(self.url, "no such file")
            size = self.root.stat().st_size
            if size > DEFAULT_LIMITS.max_file_bytes:  # refused before anything is copied
                raise ManifestError(self.root.name, f"file is {size} bytes, over the limit of "
                                    f"{DEFAULT_LIMITS.max_file_bytes} bytes")
            return
        if not self.root.exists():
            raise SourceError(self.url, "no such directory")
        if not self.root.is_dir():
            raise SourceError(self.url, "no such directory: the path is not a directory")
        if self.path != self.root and not self.path.is_dir():
            raise RevisionNotFoundError(self.url, f"path {self.options.path} is not a directory")

    def resolve(self) -> str:
        """``sha256:<hex>`` of the walked files' names and contents.

        With ``path=``, of the whole folder given and of the rendered folder (which may be
        hidden or ignored in the whole), so a change to anything a renderer may read is a
        new revision. Raises SourceError when the location is gone, and ManifestError
        (naming the file) for a manifest symlink leading outside or an unreadable entry.
        """
        self._check()
        if self._is_file:
            content = self._digests.file(os.fspath(self.root), self.root.name)
            return _one_file_digest(self.root.name, content)
        try:
            digest = self._digests.tree(self.root)
            if self.path != self.root:
                inner = self._digests.tree(self.path)
                digest = "sha256:" + hashlib.sha256(f"{digest}\n{inner}".encode()).hexdigest()
        finally:
            self._digests.forget_unseen()
        return digest

    def fetch(self, revision: str) -> Artifact:
        """The folder itself (or a private copy of the file), if its content still has
        digest ``revision``; the same :class:`Artifact` object as the last fetch when
        the revision is the same.

        Raises RevisionNotFoundError when it changed since ``revision`` was resolved:
        a folder keeps no old revisions.
        """
        if not _REVISION_RE.fullmatch(revision):
            raise RevisionNotFoundError(
                self.url, f"{revision!r} is not a directory revision (expected sha256:<64 hex>)"
            )
        last = self._artifact
        if self._is_file:
            if last is not None and last.revision == revision and last.path.is_dir():
                return last
            artifact = self._copy(revision)
        else:
            self._current(revision)
            if last is not None and last.revision == revision:
                return last
            artifact = Artifact(url=self.url, revision=revision, digest=revision, path=self.path,
                                root=self.root if self.path != self.root else None, metadata={})
        self._artifact = artifact
        return artifact

    def _current(self, revision: str) -> None:
        current = self.resolve()
        if current != revision:
            raise RevisionNotFoundError(
                self.url,
                f"revision {revision} is gone: the directory changed since it was resolved "
                f"(now {current}); resolve again",
            )

    def _copy(self, revision: str) -> Artifact:
        """A read-only temporary folder holding the file as it is at ``revision``."""
        self._check()
        name = self.root.name
        folder = Path(tempfile.mkdtemp(prefix="gitops-file-"))  # 0700: private
        try:
            copy = folder / name
            digest = hashlib.sha256()
            try:  # copied and hashed in chunks: a huge file never sits in memory whole
                with open(self.root, "rb") as source, open(copy, "xb") as target:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        target.write(chunk)
            except OSError as exc:
                raise ManifestError(name, f"cannot read: {exc.strerror}") from exc
            current = _one_file_digest(name, digest.hexdigest())
            if current != revision:
                raise RevisionNotFoundError(
                    self.url, f"revision {revision} is gone: the file changed since it was "
                              f"resolved (now {current}); resolve again")
            copy.chmod(0o400)
            folder.chmod(0o500)
        except BaseException:
            _remove(folder)
            raise
        _remove_all(self._copies)  # only the newest copy is kept
        self._copies.append(folder)
        return Artifact(url=self.url, revision=revision, digest=revision, path=folder,
                        metadata={"file": os.fspath(self.root)})

    def close(self) -> None:
        """Remove the private copy of a single-file source. Idempotent."""
        self._artifact = None
        _remove_all(self._copies)


def _one_file_digest(name: str, content: str) -> str:
    """The tree digest of a folder holding only ``name`` (hex SHA-256 ``content``)."""
    return "sha256:" + hashlib.sha256(os.fsencode(f"{name}\0{content}\n")).hexdigest()


def _remove(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.chmod(0o700)
        shutil.rmtree(folder)


def _remove_all(folders: list[Path]) -> None:
    while folders:
        _remove(folders.pop())


def _split(url: str) -> tuple[str, str]:
    """The location a ``dir:`` URL or bare path names, and its fragment (options)."""
    if not url.startswith("dir:"):
        path, fragment = url, ""
    else:
        rest, _, fragment = url[len("dir:") :].partition("#")
        if rest.startswith("//"):
            if not rest.startswith("///"):
                raise InvalidURLError(
                    url, "a dir: URL names a local path: dir:PATH, dir:/abs/path or "
                         "dir:///abs/path")
            rest = rest[2:]
        path = rest
    if not path:
        raise InvalidURLError(url, "empty path (use dir:. for the current directory)")
    return path, fragment
