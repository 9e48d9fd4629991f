"""The local bare mirror of one remote, fetched shallowly and incrementally under a file lock.

One bare repository per remote URL lives in ``<cache>/git/repos/<remote key>/``. A
fetch asks only for the objects a revision needs (depth 1), offering the commits
fetched before (recorded under ``refs/gitops/``) as common ground, so a one-file commit
transfers a handful of objects. Servers that refuse a commit by SHA (protocol v0/v1
without ``allowReachableSHA1InWant``) get one full, unshallow fetch instead. A mirror
that grew many packs is reset rather than repacked (it is only a cache). All access
happens inside :meth:`Mirror.open`, which holds an inter-process lock for the remote;
this module never writes outside the mirror's directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import filelock
from dulwich.errors import NotGitRepository
from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from gitops.cache import ArtifactStore, sweep_temp, temp_name
from gitops.errors import AuthenticationError, RevisionNotFoundError, SourceError
from gitops.sources.git.packs import ingest_pack
from gitops.sources.git.transport import Remote
from gitops.sources.git.url import valid_ref_name

__all__ = ["MAX_PACKS", "Mirror", "mirrors_root"]

#: More packs than this (one per incremental fetch) and the mirror is started afresh.
MAX_PACKS = 64
_UNSHALLOW = 0x7FFFFFFF  # what `git fetch --unshallow` asks for
_USED = "gitops-used"


def mirrors_root(store: ArtifactStore) -> Path:
    """Where the mirrors of every remote live."""
    return store.root / "git" / "repos"


class _FetchTarget:
    """A repository whose graph walker offers ``haves`` (dulwich offers only refs/heads)
    and whose object store takes fetched packs in through :func:`ingest_pack`, adding
    their blobs to ``blobs``."""

    def __init__(self, repo: Repo, haves: list[ObjectID], blobs: dict[ObjectID, bytes]
                 ) -> None:
        self._repo = repo
        self._haves = haves
        self.object_store = _IngestingStore(repo.object_store, blobs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def get_graph_walker(self, heads: list[ObjectID] | None = None) -> Any:
        return self._repo.get_graph_walker(heads=self._haves if heads is None else heads)


class _IngestingStore:
    """A mirror's object store, as dulwich's client writes a fetched pack into it."""

    def __init__(self, store: Any, blobs: dict[ObjectID, bytes]) -> None:
        self._store = store
        self._blobs = blobs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def add_thin_pack(self, read_all: Callable[[int], bytes],
                      read_some: Callable[[int], bytes] | None,
                      progress: Callable[..., None] | None = None, **kwargs: Any) -> None:
        # dulwich's client hands over the spooled pack (a file's read): read to the end
        if isinstance(self._store, DiskObjectStore) and self._store.object_format.name == "sha1":
            ingest_pack(self._store, read_all, self._blobs, progress=progress)
        else:
            self._store.add_thin_pack(read_all, read_some, progress=progress, **kwargs)


class Mirror:
    """The cache repository of ``remote`` in ``store``."""

    def __init__(self, store: ArtifactStore, remote: Remote, *, lock_timeout: float = 300.0
                 ) -> None:
        self.remote = remote
        self.key = remote.url.remote_key
        self.path = mirrors_root(store) / self.key
        self._store = store
        self._lock_timeout = lock_timeout

    @contextmanager
    def open(self) -> Iterator[Repo]:
        """The mirror repository, created if missing, with the remote's lock held."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self._store.lock(f"git-{self.key}",
                                                     timeout=self._lock_timeout))
            except filelock.Timeout as exc:
                raise SourceError(
                    self.remote.shown, f"the cache of this repository ({self.path}) stayed "
                                       f"locked by another process for {self._lock_timeout:g}s"
                ) from exc
            repo = self._open_or_init()
            if len(repo.object_store.packs) > MAX_PACKS:
                repo = self._reset(repo)
            try:
                yield repo
            finally:
                repo.close()

    def ensure(self, repo: Repo, wants: Sequence[str], record: Mapping[str, str]
               ) -> dict[ObjectID, bytes]:
        """Make the objects ``wants`` (hex ids) and what they need present in ``repo``,
        then point ``refs/gitops/<ref>`` at the commits in ``record`` (ref -> commit).

        Returns the blobs that were fetched (id -> content), so that a checkout need not
        read them back from the pack. Raises RevisionNotFoundError when the remote does
        not have one of them.
        """
        fetched: dict[ObjectID, bytes] = {}
        missing = [w for w in wants if not _has(repo, w)]
        if missing:
            self._fetch(repo, missing, fetched)
        for ref, commit in record.items():
            name = ref[len("refs/"):] if ref.startswith("refs/") else ref
            if valid_ref_name(name) and _has(repo, commit):  # names may come from callers
                repo.refs[Ref(b"refs/gitops/" + name.encode())] = ObjectID(commit.encode("ascii"))
        (self.path / _USED).touch()
        return fetched

    # -- internals -----------------------------------------------------------------

    def _open_or_init(self) -> Repo:
        if (self.path / "objects").is_dir():
            try:
                return Repo(os.fspath(self.path))
            except NotGitRepository:
                pass  # a mirror left half-created by a killed process: start again
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temp(self.path.parent)  # mirrors a killed process left half-created
        tmp = self.path.with_name(temp_name(f".{self.key}"))
        Repo.init_bare(os.fspath(tmp), mkdir=True).close()
        os.rename(tmp, self.path)
        return Repo(os.fspath(self.path))

    def _reset(self, repo: Repo) -> Repo:
        repo.close()
        shutil.rmtree(self.path)
        return self._open_or_init()

    def _haves(self, repo: Repo) -> list[ObjectID]:
        store = repo.object_store
        return sorted(sha for sha in repo.refs.as_dict(Ref(b"refs/gitops")).values()
                      if sha in store)

    def _fetch(self, repo: Repo, missing: list[str], fetched: dict[ObjectID, bytes]) -> None:
        target = _FetchTarget(repo, self._haves(repo), fetched)
        try:
            self.remote.fetch(target, missing, depth=1)
        except AuthenticationError:
            raise
        except SourceError as exc:
            self._fetch_refused(repo, missing, exc, fetched)
        self._check_present(repo, missing)

    def _fetch_refused(self, repo: Repo, missing: list[str], error: SourceError,
                       fetched: dict[ObjectID, bytes]) -> None:
        """A fetch by SHA failed: find out whether the objects are simply unknown."""
        refs = self.remote.ls_refs(None)  # raises its own error if the remote is the problem
        advertised = set(refs.refs.values())
        if all(w in advertised for w in missing):
            raise error  # advertised objects failed to arrive: a real transport failure
        if refs.protocol_version == 2:
            # protocol v2 serves any reachable commit by SHA: the server does not have it
            self._check_present(repo, missing)
        tips = sorted({sha for name, sha in refs.refs.items()
                       if name.startswith(("refs/heads/", "refs/tags/"))})
        depth = _UNSHALLOW if repo.get_shallow() else None
        self.remote.fetch(_FetchTarget(repo, self._haves(repo), fetched), tips, depth=depth)

    def _check_present(self, repo: Repo, wanted: list[str]) -> None:
        absent = [w for w in wanted if not _has(repo, w)]
        if absent:
            raise RevisionNotFoundError(
                self.remote.shown, f"no commit {absent[0]} in the repository (unknown commit, "
                                   "or not reachable from any branch or tag)")


def _has(repo: Repo, sha: str) -> bool:
    return ObjectID(sha.encode("ascii")) in repo.object_store
