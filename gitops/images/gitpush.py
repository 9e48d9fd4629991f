"""Write the policies' choices back to Git: fetch, rewrite the marked fields, commit, push.

One :func:`update_repository` call is one attempt of an ``ImageUpdateAutomation``: it
fetches the branch (the push branch when it exists, as Flux does, else the checkout
branch) into a working tree, rewrites the marked fields (:mod:`.setters`), and when
anything changed commits once (author and message from the spec, optionally signed by
the real ``gpg``) and pushes with a compare-and-swap. When someone else pushed
meanwhile, the new head is fetched and the edit made again on it, a bounded number of
times. The remote is reached exactly as the Git source reaches it (URL grammar,
credentials, transports: :mod:`gitops.sources.git`); credentials appear in no message,
commit or log line. Nothing is committed when nothing changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from dulwich.diff_tree import tree_changes
from dulwich.errors import NotGitRepository
from dulwich.index import validate_path
from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo
from filelock import FileLock

from gitops.errors import GitopsError, InputError, RevisionNotFoundError
from gitops.images.latest import LatestImage
from gitops.images.setters import FileUpdate, ImageChoice, update_tree
from gitops.images.spec import ImageUpdateAutomation
from gitops.sources.git.credentials import resolve_credentials
from gitops.sources.git.transport import RefMovedError, Remote
from gitops.sources.git.url import parse_git_url

__all__ = [
    "DEFAULT_MESSAGE",
    "MESSAGE_FIELDS",
    "UpdateResult",
    "render_message",
    "update_repository",
]

log = logging.getLogger(__name__)

#: The fields a ``git.commit.messageTemplate`` may use (``$name`` or ``${name}``).
MESSAGE_FIELDS = ("automation", "branch", "changes", "files", "images", "count")
DEFAULT_MESSAGE = "Update images (automation $automation)\n\n$changes\n"
_DIRTY = "gitops-update-in-progress"
_ATTEMPTS = 5
_LOCK = 300.0  # seconds an update waits for another one using the same workdir


@dataclass(frozen=True)
class UpdateResult:
    """What one update did: ``commit`` is None when nothing changed (nothing pushed)."""

    commit: str | None
    branch: str
    changes: tuple[FileUpdate, ...]
    pushed: bool
    #: how many times the edit was made (more than one after a concurrent push)
    attempts: int = 1
    #: files with markers naming a policy not given (left alone; see FileUpdate.unknown)
    unknown: tuple[FileUpdate, ...] = ()


@dataclass(frozen=True)
class _Plan:
    """What an ``ImageUpdateAutomation`` asks of Git."""

    key: str
    url: str = field(repr=False)  # may hold a password
    checkout_branch: str
    push_branch: str
    author_name: str
    author_email: str
    message_template: str | None
    signing_key: str | None
    path: str
    pin_digest: bool

    @classmethod
    def of(cls, automation: ImageUpdateAutomation) -> _Plan:
        git, update = automation.spec.git, automation.spec.update
        return cls(automation.key, git.url, git.checkout.ref.branch, git.push_branch,
                   git.commit.author.name, git.commit.author.email,
                   git.commit.message_template, git.commit.signing_key, update.path,
                   update.pin_digest)


def update_repository(
    automation: ImageUpdateAutomation,
    choices: Mapping[str, LatestImage],
    *,
    workdir: Path | None = None,
    timeout: float = 30.0,
    attempts: int = _ATTEMPTS,
    credentials: Mapping[str, Any] | None = None,
) -> UpdateResult:
    """Rewrite the marked fields of the automation's branch to ``choices`` and push once.

    ``choices`` maps ``NS:NAME`` to what each policy chose. ``workdir`` keeps the
    working tree between calls (only what changed is fetched and written again); by
    default a temporary one is used. ``credentials`` are the Git source's credential and
    trust options (``username``, ``password``, ``bearer_token``, ``ssh_key``,
    ``ssh_key_passphrase``, ``known_hosts``, ``ca_bundle``, ...; docs/git.md), over the
    URL's userinfo and the ``GITOPS_GIT_*`` environment. Raises InputError for a bad spec or marker,
    SourceError (credential-free) when the remote cannot be read or refuses the push,
    RefMovedError when others kept pushing through ``attempts`` tries.
    """
    plan = _Plan.of(automation)
    _check_plan(plan)
    url = parse_git_url(plan.url)
    remote = Remote(url, resolve_credentials(url, **(credentials or {})), timeout=timeout)
    if workdir is not None:
        return _Updater(plan, choices, workdir, remote).run(attempts)
    with tempfile.TemporaryDirectory(prefix="gitops-image-update-") as tmp:
        return _Updater(plan, choices, Path(tmp) / "tree", remote).run(attempts)


def render_message(template: str | None, *, automation: str, branch: str,
                   updates: Sequence[FileUpdate]) -> str:
    """The commit message: ``template`` (``string.Template`` syntax, the fields of
    :data:`MESSAGE_FIELDS`) or :data:`DEFAULT_MESSAGE`. Raises InputError naming the
    automation for an unknown field or a ``$`` that starts none."""
    text = template if template is not None else DEFAULT_MESSAGE
    changes = [(u.path, c) for u in updates for c in u.changes]
    values = {
        "automation": automation,
        "branch": branch,
        "changes": "\n".join(f"- {path}:{c.line}: {c.old} -> {c.new} ({c.policy})"
                             for path, c in changes),
        "files": "\n".join(u.path for u in updates),
        "images": "\n".join(dict.fromkeys(c.new for _, c in changes)),
        "count": str(len(changes)),
    }
    parsed = Template(text)
    unknown = sorted(set(parsed.get_identifiers()) - set(values))
    if unknown or not parsed.is_valid():
        what = f"unknown field ${unknown[0]}" if unknown else "a '$' that starts no field"
        raise InputError(f"ImageUpdateAutomation {automation}: git.commit.messageTemplate has "
                         f"{what} (fields: {', '.join(MESSAGE_FIELDS)}; write $$ for $)")
    return parsed.substitute(values)


def _check_plan(plan: _Plan) -> None:
    """What the spec's model cannot check alone: the message template's fields."""
    render_message(plan.message_template, automation=plan.key, branch=plan.push_branch,
                   updates=())


class _Updater:
    def __init__(self, plan: _Plan, choices: Mapping[str, ImageChoice], workdir: Path,
                 remote: Remote) -> None:
        self.plan = plan
        self.choices = choices
        self.workdir = workdir
        self.remote = remote
        self.shown = remote.shown

    def run(self, attempts: int) -> UpdateResult:
        # the lock is beside the working tree, taken before it is created: two processes
        # sharing the cache must not see each other's half-made repository
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(os.fspath(self.workdir.with_name(self.workdir.name + ".lock")),
                        timeout=_LOCK)
        with closing(self.remote), lock, self._repo() as repo:
            for attempt in range(1, attempts + 1):
                try:
                    return self._attempt(repo, attempt)
                except RefMovedError as exc:
                    if attempt == attempts:
                        raise
                    log.info("%s: %s; fetching it and updating again", self.plan.key,
                             exc.reason)
        raise AssertionError("unreachable")

    def _attempt(self, repo: Repo, attempt: int) -> UpdateResult:
        plan = self.plan
        push_ref = f"refs/heads/{plan.push_branch}"
        refs = self.remote.ls_refs(["refs/heads/"]).refs
        remote_push = refs.get(push_ref)
        base = remote_push or refs.get(f"refs/heads/{plan.checkout_branch}")
        if base is None:
            raise RevisionNotFoundError(self.shown, f"no branch {plan.checkout_branch}")
        self._checkout(repo, base)
        dirty = Path(repo.controldir()) / _DIRTY
        dirty.touch()
        marked = update_tree(self.workdir, plan.path, self.choices, pin_digest=plan.pin_digest)
        updates = [u for u in marked if u.changed]
        unknown = tuple(u for u in marked if u.unknown)
        if not updates:
            dirty.unlink()
            return UpdateResult(None, plan.push_branch, (), False, attempt, unknown)
        commit = self._commit(repo, base, updates)
        repo.refs[Ref(b"HEAD")] = ObjectID(commit.encode())  # the tree on disk is the commit's
        dirty.unlink()
        self.remote.push(repo, push_ref, remote_push, commit)
        log.info("%s: pushed %s to %s (%d change(s))", plan.key, commit[:12], plan.push_branch,
                 sum(len(u.changes) for u in updates))
        return UpdateResult(commit, plan.push_branch, tuple(updates), True, attempt, unknown)

    # -- the working tree ----------------------------------------------------------------

    @contextmanager
    def _repo(self) -> Iterator[Repo]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        control = self.workdir / ".git"
        try:
            repo = Repo(os.fspath(self.workdir)) if control.is_dir() else None
        except NotGitRepository:  # a creation that was interrupted: start again
            shutil.rmtree(control)
            repo = None
        if repo is None:
            repo = Repo.init(os.fspath(self.workdir))
        with closing(repo):
            yield repo

    def _checkout(self, repo: Repo, commit: str) -> None:
        """Make the working tree the tree of ``commit``, fetching it if needed."""
        sha = ObjectID(commit.encode())
        if sha not in repo.object_store:
            self.remote.fetch(repo, [commit], depth=1)
        new_tree = _commit_object(repo, sha).tree
        old_tree: ObjectID | None = None
        if not (Path(repo.controldir()) / _DIRTY).exists():
            try:
                old_tree = _commit_object(repo, repo.refs[Ref(b"HEAD")]).tree
            except KeyError:
                old_tree = None
        if old_tree is None:
            self._clear()  # unknown or interrupted state: write the whole tree
        for change in tree_changes(repo.object_store, old_tree, new_tree):
            if change.old is not None and change.old.path is not None and (
                    change.new is None or change.new.path != change.old.path
                    or change.new.mode != change.old.mode):
                self._remove(change.old.path)
            if change.new is not None and change.new.path is not None:
                assert change.new.mode is not None and change.new.sha is not None
                self._write(repo, change.new.path, change.new.mode, change.new.sha)
        repo.refs[Ref(b"HEAD")] = sha
        with_dirty = Path(repo.controldir()) / _DIRTY
        if with_dirty.exists():
            with_dirty.unlink()

    def _clear(self) -> None:
        for entry in self.workdir.iterdir():
            if entry.name == ".git":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _target(self, path: bytes) -> Path:
        if not validate_path(path):
            raise InputError(f"{self.shown}: the repository holds an unsafe path {path!r}")
        return self.workdir / os.fsdecode(path)

    def _linked_folder(self, target: Path) -> Path | None:
        """The first folder on the way from the working tree to ``target`` that is a
        symlink (a tree where a folder became a link, changes not all applied yet)."""
        current = self.workdir
        for part in target.relative_to(self.workdir).parts[:-1]:
            current = current / part
            if current.is_symlink():
                return current
            if not current.exists():
                return None
        return None

    def _remove(self, path: bytes) -> None:
        target = self._target(path)
        if self._linked_folder(target) is not None:
            return  # its folder is a link now: the file is gone, and what the link
            # points at (perhaps outside the working tree) is not ours to remove
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()

    def _write(self, repo: Repo, path: bytes, mode: int, sha: bytes) -> None:
        target = self._target(path)
        linked = self._linked_folder(target)
        if linked is not None:  # a link becoming a folder: never write through it
            linked.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():  # a folder becomes a file: its files' deletions come later
            shutil.rmtree(target)
        kind = mode & 0o170000
        if kind == 0o160000:  # a submodule: an empty folder, as git clone leaves it
            target.mkdir(exist_ok=True)
            return
        blob = repo.object_store[ObjectID(sha)]
        assert isinstance(blob, Blob)
        if kind == 0o120000:
            target.symlink_to(os.fsdecode(blob.as_raw_string()))
            return
        target.write_bytes(blob.as_raw_string())
        if mode & 0o111:
            target.chmod(0o755)

    # -- the commit ----------------------------------------------------------------------

    def _commit(self, repo: Repo, base: str, updates: Sequence[FileUpdate]) -> str:
        plan = self.plan
        parent = _commit_object(repo, ObjectID(base.encode()))
        tree = repo.object_store[parent.tree]
        assert isinstance(tree, Tree)
        edits: list[tuple[bytes, int | None, ObjectID | None]] = []
        for update in updates:
            path = update.path.encode()
            blob = Blob.from_string((self.workdir / update.path).read_bytes())
            repo.object_store.add_object(blob)
            mode = tree.lookup_path(repo.object_store.__getitem__, path)[0]
            edits.append((path, mode, blob.id))
        commit = Commit()
        commit.tree = commit_tree_changes(repo.object_store, tree, edits)
        commit.parents = [parent.id]
        identity = f"{plan.author_name} <{plan.author_email}>".encode()
        commit.author = commit.committer = identity
        now = int(time.time())
        commit.author_time = commit.commit_time = now
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        message = render_message(plan.message_template, automation=plan.key,
                                 branch=plan.push_branch, updates=updates)
        commit.message = message.encode()
        if plan.signing_key:
            commit.gpgsig = _gpg_sign(commit.as_raw_string(), plan.signing_key, plan.key)
        repo.object_store.add_object(commit)
        return commit.id.decode()


def _commit_object(repo: Repo, sha: ObjectID) -> Commit:
    commit = repo.object_store[sha]
    if not isinstance(commit, Commit):
        raise InputError(f"{sha.decode()} is not a commit")
    return commit


def _gpg_sign(payload: bytes, key: str, automation: str) -> bytes:
    """A detached, armored signature of ``payload`` by ``key`` (the user's keyring or
    ``GNUPGHOME``), made as git makes it."""
    program = shutil.which("gpg")
    where = f"ImageUpdateAutomation {automation}: signing with key {key}"
    if program is None:
        raise GitopsError(f"{where}: gpg is not installed")
    try:
        done = subprocess.run(
            [program, "--batch", "--no-tty", "--status-fd=2", "-bsau", key, "--armor"],
            input=payload, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise GitopsError(f"{where}: gpg did not answer within 60s") from None
    status = done.stderr.decode(errors="replace")
    if done.returncode != 0 or "[GNUPG:] SIG_CREATED" not in status:
        lines = [line for line in status.splitlines()
                 if line.strip() and not line.startswith("[GNUPG:]")]
        raise GitopsError(f"{where} failed: {'; '.join(lines)[:300] or 'no signature made'}")
    return done.stdout
