"""Sources shared by a fleet: many Applications, one repository, one question to the remote.

A set that generates 1,000 Applications from 50 folders of one Git repository would,
with one source per Application, ask the remote for its refs 1,000 times per round (a
Git host rate-limits that). :class:`SharedSources` opens one Git source per repository
(the URL without ``#path=``, with its ref and options) and gives each Application a
:class:`FolderSource` view of its folder (the whole tree stays readable, as with
``#path=``): ``fetch()`` happens once per revision, and ``resolve()`` asks the remote
once for all the views of a repository:

* **rounds** (the SDK, ``gitops run --once``: ``SharedSources()``): an answer holds until
  :meth:`SharedSources.refresh` starts a new round, and a repository stays open until
  :meth:`SharedSources.close`, even between one view's close and the next view;
* **freshness** (the operator: ``SharedSources(freshness=operator_freshness)``): an
  answer holds for ``freshness(app)`` seconds for the asking Application (10 % of its
  interval, at most 30 s), and a view asked to :meth:`FolderSource.require_fresh`
  (a webhook, a manual sync) takes only an answer asked after that moment.

Concurrent resolves of one repository are single-flight: one asks, the others wait for
its answer (or its error: raised to each, never kept). A cancelled question
(``KeyboardInterrupt``) is asked again by the next caller. Git URLs with fragment
options other than ``path`` and other sources (``dir:``, ``oci://``) are opened as
usual, one per Application.

Repositories are told apart by an HMAC (a key random per process) of the URL and the
options, so credentials are in no key, log or ``repr``; two Applications with different
credentials or verification options never share. Each view holds a reference: closing
one Application's view never closes the source the others use (the last one does).

:meth:`SharedSources.folder_digest` is the digest of one folder at one revision
(:func:`gitops.tree.tree_digest`), so a caller can tell which Applications a new commit
touches and re-plan only those. It covers the folder only: an Application whose render
reads outside its folder (a kustomize base in ``../``) must not be skipped this way.
Nothing here applies anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from gitops.apps.spec import Application
from gitops.cache import still_cached
from gitops.errors import RevisionNotFoundError
from gitops.model import Artifact
from gitops.options import opened_with_key
from gitops.plugins import open_source, split_scheme
from gitops.sources.base import Source
from gitops.tree import tree_digest
from gitops.urls import scrub

__all__ = ["FRESHNESS_CAP", "FRESHNESS_SHARE", "FolderSource", "SharedSources",
           "operator_freshness"]

#: the part of an Application's interval a shared answer stays fresh for it
FRESHNESS_SHARE = 0.1
#: at most this many seconds, whatever the interval
FRESHNESS_CAP = 30.0

_ARTIFACTS = 2  # revisions answered from memory per repository (the current one, the last)


def operator_freshness(app: Application) -> float:
    """How long a shared answer stays fresh for ``app``: 10 % of its interval, at most 30 s."""
    return min(FRESHNESS_SHARE * float(app.spec.interval), FRESHNESS_CAP)


class _Flight:
    """One question to the remote, awaited by every caller that came meanwhile."""

    def __init__(self, asked: float) -> None:
        self.asked = asked
        self.done = threading.Event()
        self.revision: str | None = None
        self.error: Exception | None = None


class _Repository:
    """One opened Git source, shared: its last answer, its flight, its fetched artifacts."""

    def __init__(self, source: Source, url: str, key: str) -> None:
        self.source = source
        self.url = url  # with credentials, if the URL has any: compared, never shown
        self.key = key
        self.users = 0
        self._state = threading.Lock()
        self._calls = threading.Lock()  # a source is not thread-safe: one call at a time
        self._answer: tuple[str, float] | None = None  # (revision, when it was asked)
        self._round: float | None = None  # when forget() began a round: no answer from before
        self._flight: _Flight | None = None
        self._artifacts: dict[str, Artifact] = {}
        #: the last failed fetch: (revision, error, when it failed); callers that were
        #: waiting for it take its error rather than each asking the remote again
        self._fetch_failed: tuple[str, Exception, float] | None = None
        self.digests: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"<shared {scrub(self.source.url)} users={self.users}>"

    def resolve(self, max_age: float | None, since: float | None) -> str:
        """The revision, asked of the remote unless an answer asked at or after ``since``
        and at most ``max_age`` seconds ago (None: any age) is known."""
        while True:
            with self._state:
                now = time.monotonic()
                answer = self._answer
                if answer is not None and (since is None or answer[1] >= since) and (
                        max_age is None or now - answer[1] <= max_age):
                    return answer[0]
                flight = self._flight
                if flight is None or (since is not None and flight.asked < since):
                    flight = self._flight = _Flight(now)
                    leader = True
                else:
                    leader = False
            if leader:
                return self._ask(flight)
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.revision is not None:
                return flight.revision
            # the one asking was interrupted: ask again

    def _ask(self, flight: _Flight) -> str:
        try:
            with self._calls:
                with self._state:  # when the remote is asked (in turn): answers are ordered by it
                    flight.asked = time.monotonic()
                revision = self.source.resolve()
        except BaseException as exc:
            flight.error = exc if isinstance(exc, Exception) else None
            with self._state:
                if self._flight is flight:
                    self._flight = None
            flight.done.set()
            raise
        flight.revision = revision
        with self._state:
            if self._flight is flight:
                self._flight = None
            # the answer of the question asked last, never one asked before a new round
            if ((self._answer is None or self._answer[1] <= flight.asked)
                    and (self._round is None or flight.asked >= self._round)):
                self._answer = (revision, flight.asked)
        flight.done.set()
        return revision

    def forget(self) -> None:
        """The next resolve asks the remote (a new round)."""
        with self._state:
            self._answer = None
            self._flight = None
            self._round = time.monotonic()

    def fetch(self, revision: str) -> Artifact:
        """The artifact of ``revision``: fetched once, then from memory while its tree is
        still in the cache (one fetch at a time; the others wait for it, and take its
        error if it fails: an unreachable remote costs one timeout, not one per view)."""
        with self._state:
            artifact = self._artifacts.get(revision)
        if artifact is not None and still_cached(artifact.tree):
            return artifact
        waited_since = time.monotonic()
        with self._calls:
            with self._state:
                artifact = self._artifacts.get(revision)
                failed = self._fetch_failed
            if artifact is not None and still_cached(artifact.tree):
                return artifact
            if failed is not None and failed[0] == revision and failed[2] >= waited_since:
                raise failed[1]  # failed while this caller waited: its answer too
            try:
                artifact = self.source.fetch(revision)
            except Exception as exc:
                with self._state:
                    self._fetch_failed = (revision, exc, time.monotonic())
                raise
            with self._state:
                self._fetch_failed = None
                self._artifacts[revision] = artifact
                while len(self._artifacts) > _ARTIFACTS:
                    self._artifacts.pop(next(iter(self._artifacts)))
            return artifact


class FolderSource(Source):
    """One Application's view of a shared Git source: a folder of the repository (or all
    of it). Closing the view releases it; the shared source closes with its last view."""

    scheme = "git"

    def __init__(self, shared: _Repository, url: str, path: str, *,
                 max_age: float | None = None,
                 release: Callable[[_Repository], None] | None = None) -> None:
        self._shared = shared
        self.url = scrub(url)
        self.path = path
        self.max_age = max_age
        self._release = release
        self._since: float | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"FolderSource({self.url!r})"

    def identity(self) -> str:
        base = self._shared.source.identity()
        return f"{base}#path={self.path}" if self.path else base

    def require_fresh(self, since: float) -> None:
        """The next resolve takes only an answer asked at or after ``since``
        (``time.monotonic()``): a webhook or a manual sync asks the remote."""
        self._since = since if self._since is None else max(self._since, since)

    def resolve(self) -> str:
        """The repository's revision, shared by every view (see the module documentation)."""
        since = self._since
        revision = self._shared.resolve(self.max_age, since)
        if self._since == since:  # served; kept if the resolve failed (the retry asks too)
            self._since = None
        return revision

    def fetch(self, revision: str) -> Artifact:
        """The shared artifact, ``path`` moved to this folder; RevisionNotFoundError if absent."""
        artifact = self._shared.fetch(revision)
        if not self.path:
            return artifact.model_copy(update={"url": self.url})
        folder = artifact.tree / self.path
        if not folder.is_dir():
            raise RevisionNotFoundError(self.url, f"path {self.path!r} does not exist at {revision}")
        return artifact.model_copy(update={
            "url": self.url, "path": folder, "root": artifact.tree,
            "metadata": {**artifact.metadata, "path": self.path}})

    def close(self) -> None:
        """Release this view (idempotent); the last view of a repository closes its source."""
        if not self._closed:
            self._closed = True
            if self._release is not None:
                self._release(self._shared)


def _split(url: str) -> tuple[str, str] | None:
    """``(repository URL, folder)`` of a Git URL whose only fragment option is ``path``
    (folder ``""``: no fragment at all)."""
    if split_scheme(url) != "git":
        return None
    base, _, fragment = url.partition("#")
    if not fragment:
        return base, ""
    if not fragment.startswith("path=") or "&" in fragment:
        return None
    path = fragment.removeprefix("path=").strip("/")
    if not path or path == "." or ".." in path.split("/"):
        return None
    return base, path


class SharedSources:
    """Opens Applications' sources, sharing one Git source per repository, ref and options.

    ``freshness(app)``: how many seconds a shared answer stays fresh for ``app``, and a
    repository closes with its last view; None (the default): an answer holds until
    :meth:`refresh`, and repositories stay open until :meth:`close`.
    """

    def __init__(self, freshness: Callable[[Application], float] | None = None) -> None:
        self._freshness = freshness
        self._lock = threading.Lock()
        self._shared: dict[str, _Repository] = {}
        self._others: list[Source] = []

    def __repr__(self) -> str:
        return f"<SharedSources repositories={len(self._shared)}>"

    def source_for(self, app: Application) -> Source:
        """The source of ``app``: a :class:`FolderSource` when it can be shared, else its
        own (closed by :meth:`close`)."""
        view = self.shared_source(app)
        if view is not None:
            return view
        source = open_source(app.spec.source.url, **app.source_options)
        with self._lock:
            self._others.append(source)
        return source

    def open_source(self, app: Application) -> Source:
        """The source of ``app`` for a caller that closes it: a view of its repository's
        shared source when it can be shared, else its own."""
        return self.shared_source(app) or open_source(app.spec.source.url, **app.source_options)

    def shared_source(self, app: Application) -> FolderSource | None:
        """A view of the shared source of ``app``'s repository; None when its source is
        not shared (not Git, fragment options other than ``path``, or a ``path``
        option, which wins over the URL's as in the Git source). The caller closes
        the view when done with it."""
        split = _split(app.spec.source.url)
        if split is None or "path" in app.source_options:  # the option wins over the URL's
            return None
        shared = self._acquire(split[0], app.source_options)
        max_age = self._freshness(app) if self._freshness is not None else None
        return FolderSource(shared, app.spec.source.url, split[1], max_age=max_age,
                            release=self._release)

    def _acquire(self, url: str, options: dict[str, Any]) -> _Repository:
        key = opened_with_key(url, options)
        with self._lock:
            shared = self._shared.get(key)
            if shared is None:
                shared = self._shared[key] = _Repository(open_source(url, **options), url, key)
            shared.users += 1
            return shared

    def _release(self, shared: _Repository) -> None:
        with self._lock:
            shared.users -= 1
            if (shared.users > 0 or self._freshness is None  # rounds: open until close()
                    or self._shared.get(shared.key) is not shared):
                return
            del self._shared[shared.key]
        shared.source.close()

    def refresh(self) -> None:
        """Start a new round: the next ``resolve()`` of each repository asks its remote again."""
        with self._lock:
            shared = list(self._shared.values())
        for one in shared:
            one.forget()

    def folder_digest(self, source: Source, revision: str) -> str | None:
        """The digest of ``source``'s folder at ``revision``; None for an unshared source."""
        if not isinstance(source, FolderSource):
            return None
        shared = source._shared
        key = (revision, source.path)
        known = shared.digests.get(key)
        if known is not None:
            return known
        digest = tree_digest(source.fetch(revision).path)
        if len(shared.digests) > 100_000:
            shared.digests.clear()
        shared.digests[key] = digest
        return digest

    def close(self) -> None:
        """Close every source opened (views still open get new ones when opened again).
        Idempotent."""
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
            others, self._others = self._others, []
        for source in [s.source for s in shared] + others:
            source.close()
