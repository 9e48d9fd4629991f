"""Sources shared by a fleet: many generated Applications, one repository, one fetch.

A set that generates 1,000 Applications from 50 folders of one Git repository would,
with one source per Application, ask the remote for its refs 1,000 times per round.
:class:`SharedSources` opens one Git source per repository (the URL without
``#path=``, with its ref and options) and gives each Application a :class:`FolderSource`
view: ``resolve()`` is asked of the remote once per round (:meth:`SharedSources.refresh`
starts a new round), ``fetch()`` once per revision, and the view only moves
``Artifact.path`` to its folder (the whole tree stays readable, as with ``#path=``).
Other URLs (``dir:``, ``oci://``, Git URLs with more fragment options) are opened as usual.

:meth:`SharedSources.folder_digest` is the digest of one folder at one revision
(:func:`gitops.tree.tree_digest`), so a caller can tell which Applications a new commit
touches and re-plan only those. It covers the folder only: an Application whose render
reads outside its folder (a kustomize base in ``../``) must not be skipped this way.
Nothing here applies anything; credentials stay in the shared source's options.
"""

from __future__ import annotations

import threading
from typing import Any

from gitops.apps.spec import Application
from gitops.errors import RevisionNotFoundError
from gitops.model import Artifact
from gitops.plugins import open_source, split_scheme
from gitops.sources.base import Source
from gitops.tree import tree_digest
from gitops.urls import scrub

__all__ = ["FolderSource", "SharedSources"]


class _Shared:
    """One opened Git source: its revision this round and its fetched artifacts."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.lock = threading.Lock()
        self.revision: str | None = None
        self.artifacts: dict[str, Artifact] = {}
        self.digests: dict[tuple[str, str], str] = {}

    def resolve(self) -> str:
        with self.lock:
            if self.revision is None:
                self.revision = self.source.resolve()
            return self.revision

    def fetch(self, revision: str) -> Artifact:
        with self.lock:
            artifact = self.artifacts.get(revision)
            if artifact is None:
                artifact = self.source.fetch(revision)
                self.artifacts = {revision: artifact}  # the latest only: a fleet moves forward
            return artifact


class FolderSource(Source):
    """One Application's view of a shared Git source: a folder of the repository."""

    scheme = "git"

    def __init__(self, shared: _Shared, url: str, path: str) -> None:
        self._shared = shared
        self.url = scrub(url)
        self.path = path

    def identity(self) -> str:
        return f"{self._shared.source.identity()}#path={self.path}"

    def resolve(self) -> str:
        """The repository's revision this round (one question to the remote per round)."""
        return self._shared.resolve()

    def fetch(self, revision: str) -> Artifact:
        """The shared artifact, ``path`` moved to this folder; RevisionNotFoundError if absent."""
        artifact = self._shared.fetch(revision)
        folder = artifact.tree / self.path
        if not folder.is_dir():
            raise RevisionNotFoundError(self.url, f"path {self.path!r} does not exist at {revision}")
        return artifact.model_copy(update={"url": self.url, "path": folder, "root": artifact.tree})

    def close(self) -> None:
        return None  # the shared source is closed by SharedSources.close()


def _split(url: str) -> tuple[str, str] | None:
    """``(repository URL, folder)`` of a Git URL whose only fragment option is ``path``."""
    if split_scheme(url) != "git":
        return None
    base, _, fragment = url.partition("#")
    if not fragment.startswith("path=") or "&" in fragment:
        return None
    path = fragment.removeprefix("path=").strip("/")
    if not path or path == "." or ".." in path.split("/"):
        return None
    return base, path


class SharedSources:
    """Opens Applications' sources, sharing one Git source per repository, ref and options."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[tuple[str, str], _Shared] = {}
        self._others: list[Source] = []

    def source_for(self, app: Application) -> Source:
        """The source of ``app``: a :class:`FolderSource` when it can be shared, else its own."""
        split = _split(app.spec.source.url)
        if split is None:
            source = open_source(app.spec.source.url, **app.source_options)
            with self._lock:
                self._others.append(source)
            return source
        return FolderSource(self._repository(split[0], app.source_options), app.spec.source.url, split[1])

    def _repository(self, url: str, options: dict[str, Any]) -> _Shared:
        key = (url, repr(sorted(options.items())))
        with self._lock:
            shared = self._shared.get(key)
            if shared is None:
                shared = self._shared[key] = _Shared(open_source(url, **options))
            return shared

    def refresh(self) -> None:
        """Start a new round: the next ``resolve()`` of each repository asks its remote again."""
        with self._lock:
            shared = list(self._shared.values())
        for one in shared:
            with one.lock:
                one.revision = None

    def folder_digest(self, source: Source, revision: str) -> str | None:
        """The digest of ``source``'s folder at ``revision``; None for an unshared source."""
        if not isinstance(source, FolderSource):
            return None
        shared = source._shared
        key = (revision, source.path)
        with shared.lock:
            known = shared.digests.get(key)
        if known is not None:
            return known
        digest = tree_digest(source.fetch(revision).path)
        with shared.lock:
            if len(shared.digests) > 100_000:
                shared.digests.clear()
            shared.digests[key] = digest
        return digest

    def close(self) -> None:
        """Close every source opened. Idempotent."""
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
            others, self._others = self._others, []
        for source in [s.source for s in shared] + others:
            source.close()
