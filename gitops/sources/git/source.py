"""The Git source: a branch, tag, semver range or commit of a remote repository.

``resolve()`` asks the remote for its refs and nothing else (a commit pin does not even
ask); ``fetch(revision)`` brings the commit into the local mirror of the remote, verifies
its signatures when asked to, and materializes the requested subpath at that commit
into a read-only, content-addressed artifact without ``.git``. Revisions read
``main@sha1:<40 hex>``, ``v1.2.0@sha1:<40 hex>`` (the commit a tag points to) or
``sha1:<40 hex>`` for a pin. This module glues the pieces of :mod:`gitops.sources.git`
together; it never renders, never shows a credential (``url`` is scrubbed), and never
materializes a revision that failed verification.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Self

from dulwich.errors import NotTreeError
from dulwich.object_store import BaseObjectStore, tree_lookup_path
from dulwich.objects import S_ISGITLINK, Commit, ObjectID, Tag, Tree
from dulwich.repo import Repo

from gitops.cache import ArtifactStore
from gitops.errors import (
    InputError,
    ManifestError,
    RevisionNotFoundError,
    SourceError,
    VerificationError,
)
from gitops.model import Artifact
from gitops.sources.base import Source
from gitops.sources.git import refs as refspec
from gitops.sources.git.bounds import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, prune_cache
from gitops.sources.git.checkout import Checkout, Objects, Previous, artifact_digest
from gitops.sources.git.credentials import Credentials, resolve_credentials
from gitops.sources.git.mirror import Mirror
from gitops.sources.git.records import (
    ArtifactRecord,
    load_last,
    load_record,
    save_last,
    save_record,
)
from gitops.sources.git.refs import Resolved
from gitops.sources.git.ssh import ssh_available
from gitops.sources.git.submodules import resolve_submodule_url, submodule_url
from gitops.sources.git.transport import Remote
from gitops.sources.git.url import GitURL, parse_git_url
from gitops.sources.git.verify import (
    ENV_PUBLIC_KEYS,
    ENV_VERIFY,
    SignatureVerifier,
    VerifyMode,
    gpg_available,
    parse_mode,
)
from gitops.tree import tree_digest
from gitops.urls import scrub

__all__ = ["GitSource"]

log = logging.getLogger("gitops.sources.git")

_MAX_SUBMODULE_DEPTH = 8
_REMEMBERED = 32  # resolved revisions kept for fetch(): tag objects, full ref names


class GitSource(Source):
    """A Git repository at one ref; see ``docs/git.md`` for URLs and options.

    Not thread-safe: use one instance per thread (instances may share a cache: the
    cache is safe across threads and processes).
    """

    scheme = "git"

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        ssh_key: str | os.PathLike[str] | None = None,
        ssh_key_passphrase: str | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        insecure_ignore_host_key: bool = False,
        ca_bundle: str | os.PathLike[str] | None = None,
        insecure_skip_tls_verify: bool = False,
        verify: str | None = None,
        public_keys: Sequence[str | os.PathLike[str]] = (),
        recurse_submodules: bool = False,
        timeout: float = 30.0,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_max_bytes: int = DEFAULT_MAX_BYTES,
        cache_max_age: float = DEFAULT_MAX_AGE,
        protocol_version: int | None = None,
    ) -> None:
        self._spec = parse_git_url(url)
        self.url = self._spec.display
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise InputError(f"{self.url}: timeout must be a positive number of seconds")
        if protocol_version not in (None, 0, 1, 2):
            raise InputError(f"{self.url}: protocol_version must be 0, 1 or 2")
        self._creds: Credentials = resolve_credentials(
            self._spec, username=username, password=password, bearer_token=bearer_token,
            ssh_key=ssh_key, ssh_key_passphrase=ssh_key_passphrase, known_hosts=known_hosts,
            insecure_ignore_host_key=insecure_ignore_host_key, ca_bundle=ca_bundle,
            insecure_skip_tls_verify=insecure_skip_tls_verify,
        )
        if verify is None and os.environ.get(ENV_VERIFY):  # the CLI's way to ask for it
            verify = os.environ[ENV_VERIFY]
            if not public_keys:
                listed = os.environ.get(ENV_PUBLIC_KEYS, "")
                public_keys = [key for key in listed.split(os.pathsep) if key]
        self._mode: VerifyMode | None = parse_mode(self.url, verify) if verify else None
        self._verifier: SignatureVerifier | None = None
        if self._mode is not None:
            if self._mode.tag and self._spec.commit is not None:
                raise InputError(f"{self.url}: verify={self._mode} needs a tag, and a commit "
                                 "pin has none")
            self._verifier = SignatureVerifier(self.url, list(public_keys))
        elif public_keys:
            raise InputError(f"{self.url}: public_keys given without verify= (head, tag or "
                             "tag_and_head)")
        self._recurse = bool(recurse_submodules)
        self._timeout = float(timeout)
        self._protocol_version = protocol_version
        self._max_bytes = int(cache_max_bytes)
        self._max_age = float(cache_max_age)
        self._store = ArtifactStore(os.fspath(cache_dir) if cache_dir is not None else None)
        self._remote = Remote(self._spec, self._creds, timeout=self._timeout,
                              protocol_version=protocol_version, shown=self.url)
        self._mirror = Mirror(self._store, self._remote)
        self._others: list[Remote] = []
        self._resolved: dict[str, Resolved] = {}
        self._verified: dict[tuple[str, str | None], str] = {}
        self._previous: tuple[str, Previous] | None = None
        flavour = f"{self._spec.subpath.as_posix()}|submodules={self._recurse}"
        self._source_key = (
            f"{self._mirror.key}-{hashlib.sha256(flavour.encode()).hexdigest()[:12]}"
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``url``; an unknown option is an InputError naming the valid ones."""
        valid = [name for name in inspect.signature(cls.__init__).parameters
                 if name not in ("self", "url")]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise InputError(f"{scrub(url)}: unknown Git source option(s) {', '.join(unknown)}; "
                             f"expected: {', '.join(valid)}")
        return cls(url, **options)

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Always usable; says which optional programs (ssh, gpg) are missing."""
        missing = [name for name, ok in (("ssh", ssh_available()), ("gpg", gpg_available()))
                   if not ok]
        if not missing:
            return True, ""
        uses = {"ssh": "git+ssh:// URLs", "gpg": "signature verification"}
        return True, "; ".join(f"{name} not found: no {uses[name]}" for name in missing)

    # -- the Source contract -------------------------------------------------------

    def identity(self) -> str:
        """The remote and ``#path=``, without ``@REF`` or ``semver``: the same app at any ref."""
        subpath = str(self._spec.subpath)
        return self._spec.remote + (f"#path={subpath}" if subpath not in ("", ".") else "")

    def resolve(self) -> str:
        """The current revision: one ls-refs round trip, no objects (a pin: no network)."""
        if self._spec.commit is not None:
            return refspec.pin(self._spec.commit).revision
        advertised = self._remote.ls_refs(refspec.prefixes_for(self._spec))
        resolved = refspec.select(self._spec, advertised)
        self._remember(resolved)
        return resolved.revision

    def fetch(self, revision: str) -> Artifact:
        """The subpath at ``revision`` as a read-only tree; verified first when asked.

        Raises RevisionNotFoundError (unknown commit, missing path), VerificationError
        (unsigned or untrusted), AuthenticationError or SourceError; on any error nothing
        new is left in the artifact cache.
        """
        name, commit = refspec.parse_revision(self.url, revision)
        resolved = self._resolved.get(revision) or Resolved(name, None, commit)
        if self._mode is not None and self._mode.tag:
            resolved = self._with_tag(resolved)
        wants = [commit]
        if self._mode is not None and self._mode.tag and resolved.tag_object:
            wants.append(resolved.tag_object)
        # remembered in the mirror as common ground for the next fetch
        record = {resolved.ref or resolved.name or "pinned": commit}
        with ExitStack() as stack:
            repo = stack.enter_context(self._mirror.open())
            fetched = self._mirror.ensure(repo, wants, record)
            commit_obj = self._commit(repo, commit)
            verified = self._verify(repo, resolved, commit_obj)
            tree = self._subtree(repo, commit_obj, revision)
            key = f"git-{tree.decode()}{'-sm' if self._recurse else ''}"
            objects = _MirrorObjects(self.url, self._spec, repo, commit_obj.tree, stack,
                                     {self._mirror.key: (self._mirror, repo)},
                                     self._submodule_mirror, 0, fetched)
            path, digest = self._artifact(key, objects, tree, revision)
        self._prune(key)
        metadata = _metadata(commit_obj, resolved, self._spec, verified)
        return Artifact(url=self.url, revision=revision, digest=digest, path=path,
                        metadata=metadata)

    def close(self) -> None:
        """Close connections and remove temporary key material. Idempotent."""
        self._remote.close()
        for remote in self._others:
            remote.close()
        self._others.clear()
        if self._verifier is not None:
            self._verifier.close()

    def prune_cache(self, *, force: bool = True) -> tuple[list[str], list[str]]:
        """Apply the cache bounds now; returns the (mirrors, artifacts) removed."""
        keep = frozenset({self._previous[0]}) if self._previous else frozenset()
        return prune_cache(self._store, max_bytes=self._max_bytes, max_age=self._max_age,
                           keep_mirrors=frozenset({self._mirror.key}), keep_artifacts=keep,
                           interval=0 if force else 3600.0)

    # -- resolving and verifying ---------------------------------------------------

    def _remember(self, resolved: Resolved) -> None:
        self._resolved[resolved.revision] = resolved
        while len(self._resolved) > _REMEMBERED:
            self._resolved.pop(next(iter(self._resolved)))

    def _with_tag(self, resolved: Resolved) -> Resolved:
        """The annotated tag behind ``resolved``, asking the remote if it is not known."""
        if resolved.tag_object is not None:
            return resolved
        if resolved.name is None:
            raise VerificationError(self.url, "a commit pin has no tag to verify")
        if resolved.ref is not None and not resolved.is_tag:
            raise VerificationError(self.url, f"{resolved.name} is not a tag; verify="
                                              f"{self._mode} needs an annotated tag")
        ref = resolved.ref or f"refs/tags/{resolved.name}"
        advertised = self._remote.ls_refs([ref])
        if ref not in advertised.refs:
            raise VerificationError(self.url, f"{resolved.name} is not a tag; verify="
                                              f"{self._mode} needs an annotated tag")
        if advertised.commit_of(ref) != resolved.commit:
            raise VerificationError(self.url, f"tag {resolved.name} no longer points to "
                                              f"{resolved.commit}")
        found = refspec.select(dataclasses.replace(self._spec, ref=ref, semver=None), advertised)
        if found.tag_object is None:
            raise VerificationError(self.url, f"tag {resolved.name} is a lightweight tag, "
                                              "which cannot carry a signature")
        return found

    def _commit(self, repo: Repo, commit: str) -> Commit:
        obj = repo.object_store[ObjectID(commit.encode("ascii"))]
        if not isinstance(obj, Commit):
            raise RevisionNotFoundError(self.url, f"{commit} is not a commit")
        return obj

    def _verify(self, repo: Repo, resolved: Resolved, commit: Commit) -> str:
        """Check the signatures ``verify`` asks for; returns a note for the metadata."""
        if self._mode is None or self._verifier is None:
            return ""
        key = (resolved.commit, resolved.tag_object if self._mode.tag else None)
        if key in self._verified:
            return self._verified[key]
        notes = []
        if self._mode.tag:
            notes.append(self._verify_tag(repo, resolved))
        if self._mode.head:
            fingerprint = self._verifier.verify(commit.raw_without_sig(), commit.gpgsig,
                                                f"commit {resolved.commit}")
            notes.append(f"commit signed by {fingerprint}")
        note = "; ".join(notes)
        self._verified[key] = note
        log.info("%s: %s verified (%s)", self.url, resolved.revision, note)
        return note

    def _verify_tag(self, repo: Repo, resolved: Resolved) -> str:
        assert self._verifier is not None and resolved.tag_object is not None
        tag = repo.object_store[ObjectID(resolved.tag_object.encode("ascii"))]
        if not isinstance(tag, Tag):
            raise VerificationError(self.url, f"tag {resolved.name} is not an annotated tag")
        if tag.object[1].decode() != resolved.commit or tag.name.decode() != resolved.name:
            raise VerificationError(self.url, f"tag object {resolved.tag_object} does not name "
                                              f"{resolved.name} at {resolved.commit}")
        fingerprint = self._verifier.verify(tag.raw_without_sig(), tag.signature,
                                            f"tag {resolved.name}")
        return f"tag {resolved.name} signed by {fingerprint}"

    # -- materializing -------------------------------------------------------------

    def _subtree(self, repo: Repo, commit: Commit, revision: str) -> ObjectID:
        subpath = self._spec.subpath.as_posix()
        if subpath == ".":
            return ObjectID(commit.tree)
        try:
            mode, sha = tree_lookup_path(repo.object_store.__getitem__, commit.tree,
                                         subpath.encode())
        except (KeyError, NotTreeError) as exc:
            raise RevisionNotFoundError(
                self.url, f"path {subpath!r} does not exist at {revision}") from exc
        if S_ISGITLINK(mode):
            raise RevisionNotFoundError(
                self.url, f"path {subpath!r} is a submodule at {revision}; point the source "
                          "at the submodule's own repository")
        if mode & 0o170000 != 0o040000:
            raise RevisionNotFoundError(self.url,
                                        f"path {subpath!r} is not a directory at {revision}")
        return ObjectID(sha)

    def _artifact(self, key: str, objects: Objects, tree: ObjectID, revision: str
                  ) -> tuple[Path, str]:
        existing = self._store.get(key)
        if existing is not None:
            record = load_record(self._store, key)
            if record is None:
                record = ArtifactRecord(_digest_of(self.url, existing))
                save_record(self._store, key, record)
            self._keep_previous(key, existing, record)
            return existing, record.digest
        previous = self._previous_checkout()
        checkout = Checkout(self.url, revision, recurse_submodules=self._recurse)
        made: list[ArtifactRecord] = []
        base = self._spec.subpath.as_posix()

        def fill(tmp: Path) -> None:
            result = checkout.run(objects, tree, tmp, base="" if base == "." else base,
                                  previous=previous)
            try:
                digest = artifact_digest(tmp, result)
            except ManifestError as exc:
                raise SourceError(self.url, f"{exc} (at {revision})") from exc
            made.append(ArtifactRecord(digest, result.files, result.sha256))
            log.info("%s: materialized %s (%d files written, %d linked)", self.url, revision,
                     result.written, result.linked)

        path = self._store.materialize(key, fill, fill_makes_read_only=True)
        record = made[0] if made else (load_record(self._store, key)
                                       or ArtifactRecord(_digest_of(self.url, path)))
        save_record(self._store, key, record)
        save_last(self._store, self._source_key, key)
        self._keep_previous(key, path, record)
        return path, record.digest

    def _keep_previous(self, key: str, path: Path, record: ArtifactRecord) -> None:
        if record.files:
            self._previous = (key, Previous(path, record.files, record.sha256))

    def _previous_checkout(self) -> Previous | None:
        if self._previous is not None and self._previous[1].root.is_dir():
            return self._previous[1]
        key = load_last(self._store, self._source_key)
        try:
            if key is None or self._store.get(key) is None:
                return None
        except ValueError:  # not an artifact key: a damaged record
            return None
        record = load_record(self._store, key)
        if record is None or not record.files:
            return None
        return Previous(self._store.path(key), record.files, record.sha256)

    def _prune(self, key: str) -> None:
        try:
            removed = prune_cache(self._store, max_bytes=self._max_bytes, max_age=self._max_age,
                                  keep_mirrors=frozenset({self._mirror.key}),
                                  keep_artifacts=frozenset({key}))
        except OSError as exc:  # a full or read-only disk must not fail a good fetch
            log.warning("%s: pruning the cache at %s failed: %s", self.url, self._store.root, exc)
            return
        if removed[0] or removed[1]:
            log.info("%s: cache pruned: %d mirrors, %d artifacts", self.url, len(removed[0]),
                     len(removed[1]))

    # -- submodules ----------------------------------------------------------------

    def _submodule_mirror(self, url: GitURL) -> Mirror:
        """The mirror of a submodule's remote; credentials only for the same origin."""
        creds = self._creds if url.same_origin(self._spec) else self._creds.for_other_origin()
        remote = Remote(url, creds, timeout=self._timeout,
                        protocol_version=self._protocol_version, shown=url.display)
        self._others.append(remote)
        return Mirror(self._store, remote)


class _MirrorObjects:
    """Objects of one (super- or sub-)project's mirror, as a checkout reads them."""

    def __init__(
        self, shown: str, url: GitURL, repo: Repo, root_tree: ObjectID, stack: ExitStack,
        opened: dict[str, tuple[Mirror, Repo]], make_mirror: Callable[[GitURL], Mirror],
        depth: int, fetched: Mapping[ObjectID, bytes],
    ) -> None:
        self._shown = shown
        self._make_mirror = make_mirror
        self._url = url
        self._repo = repo
        self._root_tree = root_tree
        self._stack = stack
        self._opened = opened
        self._depth = depth
        self._fetched = fetched

    @property
    def store(self) -> BaseObjectStore:
        return self._repo.object_store

    @property
    def fetched(self) -> Mapping[ObjectID, bytes]:
        return self._fetched

    def submodule(self, path: str, commit: ObjectID) -> tuple[Objects, ObjectID]:
        shown = self._shown
        if self._depth >= _MAX_SUBMODULE_DEPTH:
            raise SourceError(shown, f"submodules nested deeper than {_MAX_SUBMODULE_DEPTH}")
        raw = submodule_url(self._gitmodules(), path)
        if raw is None:
            raise SourceError(shown, f"submodule {path!r} has no URL in .gitmodules")
        url = resolve_submodule_url(self._url, raw, path)
        opened = self._opened.get(url.remote_key)
        if opened is None:
            mirror = self._make_mirror(url)
            opened = (mirror, self._stack.enter_context(mirror.open()))
            self._opened[url.remote_key] = opened
        mirror, repo = opened
        fetched = mirror.ensure(repo, [commit.decode()], {})
        obj = repo.object_store[commit]
        if not isinstance(obj, Commit):
            raise SourceError(shown, f"submodule {path!r} points to {commit.decode()}, which "
                                     "is not a commit")
        sub = _MirrorObjects(shown, url, repo, obj.tree, self._stack, self._opened,
                             self._make_mirror, self._depth + 1, fetched)
        return sub, obj.tree

    def _gitmodules(self) -> bytes | None:
        tree = self._repo.object_store[self._root_tree]
        if not isinstance(tree, Tree):
            return None
        try:
            _, sha = tree.lookup_path(self._repo.object_store.__getitem__, b".gitmodules")
        except (KeyError, NotTreeError):
            return None
        _, data = self._repo.object_store.get_raw(sha)
        return bytes(data)


def _digest_of(shown: str, path: Path) -> str:
    try:
        return tree_digest(path)
    except ManifestError as exc:
        raise SourceError(shown, str(exc)) from exc


def _metadata(commit: Commit, resolved: Resolved, spec: GitURL, verified: str) -> dict[str, str]:
    encoding = (commit.encoding or b"utf-8").decode("ascii", "replace")

    def text(value: bytes) -> str:
        try:
            return value.decode(encoding, "replace")
        except LookupError:
            return value.decode("utf-8", "replace")

    offset = timezone(timedelta(seconds=commit.author_timezone))
    data = {
        "commit": commit.id.decode(),
        "message": text(commit.message).strip(),
        "author": text(commit.author),
        "date": datetime.fromtimestamp(commit.author_time, offset).isoformat(),
        "committer": text(commit.committer),
        "committed": datetime.fromtimestamp(commit.commit_time, UTC).isoformat(),
    }
    if resolved.ref:
        data["ref"] = resolved.ref
    if spec.subpath.as_posix() != ".":
        data["path"] = spec.subpath.as_posix()
    if verified:
        data["verified"] = verified
    return data

