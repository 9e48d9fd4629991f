"""The Git source: a branch, tag, semver range or commit of a remote repository.

``resolve()`` asks the remote for its refs and nothing else (a commit pin does not even
ask); ``fetch(revision)`` brings the commit into the local mirror of the remote, verifies
its signatures when asked to, and materializes the commit's whole tree into a read-only,
content-addressed artifact without ``.git`` (``Artifact.root``; ``#path=`` only moves
``Artifact.path``). Options come from the URL fragment and keywords, validated once
(:class:`~gitops.sources.git.options.GitOptions`). Revisions read
``main@sha1:<40 hex>``, ``v1.2.0@sha1:<40 hex>`` (the commit a tag points to) or
``sha1:<40 hex>`` for a pin. This module glues the pieces of :mod:`gitops.sources.git`
together; it never renders, never shows a credential (``url`` is scrubbed), and never
materializes a revision that failed verification.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Self

from dulwich.errors import NotTreeError
from dulwich.object_store import BaseObjectStore, tree_lookup_path
from dulwich.objects import S_ISGITLINK, Commit, ObjectID, Tag, Tree
from dulwich.repo import Repo

from gitops.cache import ArtifactStore, still_cached
from gitops.errors import (
    InputError,
    ManifestError,
    RevisionNotFoundError,
    SourceError,
    VerificationError,
)
from gitops.model import Artifact
from gitops.options import PluginOptions, validate_options
from gitops.sources.base import Source
from gitops.sources.fragment import fragment_options, location
from gitops.sources.git import refs as refspec
from gitops.sources.git.bounds import PRUNE_INTERVAL, prune_cache
from gitops.sources.git.checkout import Checkout, Objects, Previous, artifact_digest
from gitops.sources.git.credentials import Credentials, resolve_credentials
from gitops.sources.git.mirror import Mirror
from gitops.sources.git.options import SECRET, GitOptions
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
from gitops.sources.git.transport import Remote, RemoteRefs
from gitops.sources.git.url import GitURL, parse_git_url, with_selection
from gitops.sources.git.verify import (
    ENV_PUBLIC_KEYS,
    ENV_VERIFY,
    SignatureVerifier,
    VerifyMode,
    gpg_available,
    parse_mode,
)
from gitops.tree import tree_digest

__all__ = ["GitSource"]

log = logging.getLogger("gitops.sources.git")

_MAX_SUBMODULE_DEPTH = 8
_REMEMBERED = 32  # resolved revisions kept for fetch(): tag objects, full ref names
_REMEMBERED_ARTIFACTS = 4  # fetched artifacts answered from memory


class GitSource(Source):
    """A Git repository at one ref; see ``docs/git.md`` for URLs and options.

    Not thread-safe: use one instance per thread (instances may share a cache: the
    cache is safe across threads and processes).
    """

    scheme = "git"
    Options = GitOptions

    def __init__(self, url: str, **options: Any) -> None:
        """Open ``url`` with ``options`` (see :class:`GitOptions`); the same as
        :meth:`from_url`. Raises InvalidURLError naming the option at fault."""
        merged = {**self.url_options(url), **options}
        self._open(url, validate_options(GitOptions, location(url), merged))

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """The options in the URL's fragment: ``#path=apps&semver=^1&recurse-submodules=1``.

        Secret options (passwords, tokens, keys) are refused in a URL.
        """
        return fragment_options(location(url), _fragment(url), secret=SECRET)

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Open ``url`` with validated ``options`` (the URL's own included)."""
        if not isinstance(options, GitOptions):
            raise TypeError(f"{cls.__name__} takes GitOptions, not {type(options).__name__}")
        source = cls.__new__(cls)
        source._open(url, options)
        return source

    def _open(self, url: str, options: GitOptions) -> None:
        fragment = _fragment(url)
        spec = parse_git_url(url[: len(url) - len(fragment) - 1] if fragment else url)
        others = "&".join(part for part in fragment.split("&")
                          if part.partition("=")[0].strip().replace("-", "_")
                          not in ("path", "semver", ""))
        self._spec = with_selection(spec, options.path, options.semver, others)
        self.url = self._spec.display
        self.options = options
        self._creds: Credentials = resolve_credentials(
            self._spec, username=options.username, password=options.secret("password"),
            bearer_token=options.secret("bearer_token"), ssh_key=options.secret("ssh_key"),
            ssh_key_passphrase=options.secret("ssh_key_passphrase"),
            known_hosts=options.known_hosts,
            insecure_ignore_host_key=options.insecure_ignore_host_key,
            ca_bundle=options.ca_bundle, insecure_skip_tls_verify=options.insecure_skip_tls_verify,
        )
        mode, public_keys = options.verify, list(options.public_keys)
        if mode is None and os.environ.get(ENV_VERIFY):  # the CLI's way to ask for it
            mode = parse_mode(self.url, os.environ[ENV_VERIFY])
            if not public_keys:
                listed = os.environ.get(ENV_PUBLIC_KEYS, "")
                public_keys = [key for key in listed.split(os.pathsep) if key]
        self._mode: VerifyMode | None = mode
        self._verifier: SignatureVerifier | None = None
        if self._mode is not None:
            if self._mode.tag and self._spec.commit is not None:
                raise InputError(f"{self.url}: verify={self._mode} needs a tag, and a commit "
                                 "pin has none")
            self._verifier = SignatureVerifier(self.url, public_keys)
        elif public_keys:
            raise InputError(f"{self.url}: public_keys given without verify= (head, tag or "
                             "tag_and_head)")
        self._recurse = options.recurse_submodules
        self._timeout = options.timeout
        self._protocol_version = options.protocol_version
        self._max_bytes = options.cache_max_bytes
        self._max_age = options.cache_max_age
        self._store = ArtifactStore(options.cache_dir)
        self._remote = Remote(self._spec, self._creds, timeout=self._timeout,
                              protocol_version=self._protocol_version, shown=self.url)
        self._mirror = Mirror(self._store, self._remote)
        self._others: list[Remote] = []
        self._resolved: dict[str, Resolved] = {}
        self._verified: dict[tuple[str, str | None], str] = {}
        self._previous: tuple[str, Previous] | None = None
        self._fetched: dict[str, Artifact] = {}
        self._last_resolve: tuple[RemoteRefs, Resolved] | None = None
        # the artifact is the whole tree (path= only moves Artifact.path), so every source
        # of one remote shares the checkouts; submodules make a different tree
        self._source_key = f"{self._mirror.key}{'-sm' if self._recurse else ''}"

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
        """The current revision: one ls-refs round trip, no objects (a pin: no network;
        ``git+file://``: the ref files read directly). Refs advertised exactly as last
        time give the last answer without choosing again (a semver range over many tags)."""
        if self._spec.commit is not None:
            return refspec.pin(self._spec.commit).revision
        advertised = self._remote.ls_refs(refspec.prefixes_for(self._spec))
        last = self._last_resolve
        if last is not None and last[0] == advertised:
            return last[1].revision
        resolved = refspec.select(self._spec, advertised)
        self._remember(resolved)
        self._last_resolve = (advertised, resolved)
        return resolved.revision

    def fetch(self, revision: str) -> Artifact:
        """The whole tree at ``revision``, read-only, with ``path`` at the ``path=`` folder;
        verified first when asked.

        A revision this source fetched before is answered from memory (the same
        :class:`Artifact` object) while its tree is still in the cache. Raises
        RevisionNotFoundError (unknown commit, missing path), VerificationError (unsigned
        or untrusted), AuthenticationError or SourceError; on any error nothing new is
        left in the artifact cache.
        """
        known = self._fetched.get(revision)
        if known is not None and still_cached(known.tree):
            return known
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
            self._check_path(repo, commit_obj, revision)
            tree = ObjectID(commit_obj.tree)
            key = f"git-{tree.decode()}{'-sm' if self._recurse else ''}"
            objects = _MirrorObjects(self.url, self._spec, repo, commit_obj.tree, stack,
                                     {self._mirror.key: (self._mirror, repo)},
                                     self._submodule_mirror, 0, fetched)
            root, digest, made = self._artifact(key, objects, tree, revision)
        self._prune(key, grew=made)
        subpath = self._spec.subpath.as_posix()
        artifact = Artifact(
            url=self.url, revision=revision, digest=digest,
            path=root if subpath == "." else root / subpath,
            root=None if subpath == "." else root,
            metadata=_metadata(commit_obj, resolved, self._spec, verified))
        self._fetched[revision] = artifact
        while len(self._fetched) > _REMEMBERED_ARTIFACTS:
            self._fetched.pop(next(iter(self._fetched)))
        return artifact

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

    def _check_path(self, repo: Repo, commit: Commit, revision: str) -> None:
        """The ``path=`` folder must exist at ``revision`` (and not be a submodule)."""
        subpath = self._spec.subpath.as_posix()
        if subpath == ".":
            return
        try:
            mode, _ = tree_lookup_path(repo.object_store.__getitem__, commit.tree,
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

    def _artifact(self, key: str, objects: Objects, tree: ObjectID, revision: str
                  ) -> tuple[Path, str, bool]:
        """The artifact of the commit's whole ``tree``: (path, digest, newly written)."""
        existing = self._store.get(key)
        if existing is not None:
            record = load_record(self._store, key)
            if record is None:
                record = ArtifactRecord(_digest_of(self.url, existing))
                save_record(self._store, key, record)
            self._keep_previous(key, existing, record)
            return existing, record.digest, False
        previous = self._previous_checkout()
        checkout = Checkout(self.url, revision, recurse_submodules=self._recurse)
        made: list[ArtifactRecord] = []

        def fill(tmp: Path) -> int | None:
            result = checkout.run(objects, tree, tmp, previous=previous)
            try:
                digest = artifact_digest(tmp, result)
            except ManifestError as exc:
                raise SourceError(self.url, f"{exc} (at {revision})") from exc
            made.append(ArtifactRecord(digest, result.files, result.sha256, result.sizes))
            log.info("%s: materialized %s (%d files written, %d linked)", self.url, revision,
                     result.written, result.linked)
            return result.total_bytes()  # the cache need not walk the tree to size it

        path = self._store.materialize(key, fill, fill_makes_read_only=True)
        record = made[0] if made else (load_record(self._store, key)
                                       or ArtifactRecord(_digest_of(self.url, path)))
        save_record(self._store, key, record)
        save_last(self._store, self._source_key, key)
        self._keep_previous(key, path, record)
        return path, record.digest, bool(made)

    def _keep_previous(self, key: str, path: Path, record: ArtifactRecord) -> None:
        if record.files:
            self._previous = (key, Previous(path, record.files, record.sha256, record.sizes))

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
        return Previous(self._store.path(key), record.files, record.sha256, record.sizes)

    def _prune(self, key: str, *, grew: bool) -> None:
        """Apply the cache bounds: now when the cache grew, else at most hourly (for age)."""
        try:
            removed = prune_cache(self._store, max_bytes=self._max_bytes, max_age=self._max_age,
                                  keep_mirrors=frozenset({self._mirror.key}),
                                  keep_artifacts=frozenset({key}),
                                  interval=0 if grew else PRUNE_INTERVAL)
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


def _fragment(url: str) -> str:
    """The options part of a Git URL (after the first ``#``)."""
    return url.partition("#")[2]


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

