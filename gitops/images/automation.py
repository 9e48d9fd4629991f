"""Image automation in the operator: policies evaluated and automations run on a schedule.

:class:`ImageAutomation` keeps the declared ``ImagePolicy`` and ``ImageUpdateAutomation``
objects running, for ``gitops run`` and ``gitops controller`` alike:

- each ImagePolicy is evaluated every ``spec.interval`` (:func:`gitops.images.latest.latest_image`;
  the tag cache keeps the registry from being asked more than needed); when its choice
  moves, the automations of its namespace run at once;
- each ImageUpdateAutomation runs every ``spec.interval``: it applies the latest image of
  every ImagePolicy of its namespace to its Git branch
  (:func:`gitops.images.gitpush.update_repository`); after a push, the applications whose
  source is that repository and branch are reconciled at once (through ``on_push``, the
  operator's webhook path: :meth:`gitops.operator.runtime.Runtime.push_received`), so the
  new image is deployed within one interval;
- status (:mod:`gitops.images.status`), metrics (:mod:`gitops.images.metrics`) and the
  notifications ``ImageUpdated`` and ``ImageUpdateFailed`` go where the operator's go.

It runs on a small pool of its own (``workers`` threads, two by default) and a dispatcher
thread: a slow registry or push never holds up an application's reconcile, and at most
one run of an object is in flight. A failing policy or automation is recorded on its own
status (``Ready=False``, the message naming the image or repository, never a credential)
and never stops the others. :meth:`ImageAutomation.stop` lets the runs in flight finish.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gitops.cache import cache_root
from gitops.errors import GitopsError, InputError
from gitops.images.latest import NoMatchingTagError
from gitops.images.status import (
    AUTOMATION_KIND,
    POLICY_KIND,
    AutomationStatus,
    ImageKind,
    ImagePolicyStatus,
    ImageStatusStore,
)
from gitops.operator.status import now
from gitops.operator.webhooks import PushEvent, normalize_repository, source_repository
from gitops.urls import scrub

if TYPE_CHECKING:
    from gitops.apps.load import Declarations
    from gitops.apps.spec import Application
    from gitops.images.gitpush import UpdateResult
    from gitops.images.latest import LatestImage
    from gitops.images.metrics import ImageMetrics
    from gitops.images.setters import FileUpdate
    from gitops.images.spec import ImagePolicy, ImageUpdateAutomation
    from gitops.operator.runtime import Runtime

__all__ = [
    "ImageAutomation",
    "ImageNotifier",
    "LatestFunction",
    "UpdateFunction",
    "discard_worktree",
    "git_credentials",
    "keep_images",
    "pushed_event",
    "runner_for",
    "worktree_path",
]

log = logging.getLogger("gitops.images")

_JITTER = 0.1  # ± of the interval, so many objects with one interval do not run together


class LatestFunction(Protocol):
    """:func:`gitops.images.latest.latest_image`'s signature, as the runner calls it."""

    def __call__(self, policy: ImagePolicy, *, with_digest: bool = False) -> LatestImage: ...


class UpdateFunction(Protocol):
    """:func:`gitops.images.gitpush.update_repository`'s signature, as the runner calls it."""

    def __call__(self, automation: ImageUpdateAutomation, choices: Mapping[str, LatestImage],
                 *, credentials: Mapping[str, Any] | None = None) -> UpdateResult: ...


class ImageNotifier(Protocol):
    """What the runner needs of :class:`gitops.operator.notify.Notifier`."""

    def notify(self, app: str, reason: str, revision: str | None, message: str) -> None: ...


def _latest_image(policy: ImagePolicy, *, with_digest: bool = False) -> LatestImage:
    """The real scan, through the tag cache: a list younger than half the policy's
    interval is reused, so policies sharing a repository list it about once an interval,
    and a new tag is still seen within one."""
    from gitops.images.latest import latest_image
    from gitops.images.scan import TagCache

    cache = TagCache(max_age=float(policy.spec.interval) / 2)
    return latest_image(policy, with_digest=with_digest, cache=cache)


def _update_repository(automation: ImageUpdateAutomation, choices: Mapping[str, LatestImage],
                       *, credentials: Mapping[str, Any] | None = None) -> UpdateResult:
    """The real update, in a working tree kept between runs under the cache (only what
    changed is fetched; ``update_repository`` locks it, so two processes take turns)."""
    from gitops.images.gitpush import update_repository

    return update_repository(automation, choices, workdir=worktree_path(automation),
                             credentials=credentials)


def worktree_path(automation: ImageUpdateAutomation) -> Path:
    """Where the working tree of ``automation`` is kept between runs (under the cache)."""
    identity = f"{automation.key} {automation.spec.git.url}"  # hashed: no credential in a path
    return cache_root() / "image-worktrees" / hashlib.sha256(identity.encode()).hexdigest()[:24]


def discard_worktree(path: Path) -> bool:
    """Remove a working tree no automation uses any more, and its lock file; kept (False)
    while an update holds its lock (another process's run: it is still in use)."""
    from filelock import FileLock, Timeout

    lock_path = path.with_name(path.name + ".lock")
    if not path.exists() and not lock_path.exists():
        return True
    try:
        with FileLock(os.fspath(lock_path), timeout=0):
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
    except Timeout:
        return False
    return True


@dataclass(eq=False)
class _Job:
    """One declared object and its schedule (guarded by the runner's condition)."""

    kind: ImageKind
    key: str
    obj: Any
    due: float
    running: bool = False
    again: bool = False
    #: working trees it no longer uses (removed, or its repository changed), discarded
    #: once its run in flight, if any, has ended
    stale: list[Path] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return str(self.obj.namespace)


@dataclass
class _Seen:
    """What the runner remembers between runs (guarded by the runner's condition)."""

    latest: dict[str, LatestImage] = field(default_factory=dict)   # policy key -> choice
    evaluated: set[str] = field(default_factory=set)              # policy keys run once
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # last failure said
    written: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


class ImageAutomation:
    """Keeps image policies evaluated and update automations running; see the module doc.

    ``store`` keeps the status; ``metrics``, ``notifier``, ``on_push`` (called with a
    :class:`~gitops.operator.webhooks.PushEvent` after each push) and ``credentials``
    (the Git credential options for an automation, see :func:`git_credentials`) are
    optional.
    ``latest`` and ``update`` default to the real scan and Git update.
    """

    def __init__(self, store: ImageStatusStore, *, metrics: ImageMetrics | None = None,
                 notifier: ImageNotifier | None = None,
                 on_push: Callable[[PushEvent], object] | None = None,
                 credentials: Callable[[ImageUpdateAutomation], Mapping[str, Any]] | None = None,
                 workers: int = 2,
                 latest: LatestFunction | None = None,
                 update: UpdateFunction | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._store = store
        self._metrics = metrics
        self._notifier = notifier
        self._on_push = on_push
        self._credentials = credentials
        self._workers = workers
        self._latest_fn: LatestFunction = latest or _latest_image
        self._update_fn: UpdateFunction = update or _update_repository
        self._cond = threading.Condition()
        self._jobs: dict[tuple[ImageKind, str], _Job] = {}
        self._seen = _Seen()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- what is declared ----------------------------------------------------------------

    def apply(self, declared: Declarations) -> None:
        """Keep the image objects ``declared`` holds (what ``gitops run`` reads)."""
        self.set_objects(declared.of(POLICY_KIND), declared.of(AUTOMATION_KIND))

    def set_objects(self, policies: Iterable[ImagePolicy],
                    automations: Iterable[ImageUpdateAutomation]) -> None:
        """Run exactly these objects: new ones at once, changed ones at once (or right
        after their run in flight), removed ones no more (their status stays)."""
        wanted: dict[tuple[ImageKind, str], Any] = {}
        for policy in policies:
            wanted[(POLICY_KIND, policy.key)] = policy
        for automation in automations:
            wanted[(AUTOMATION_KIND, automation.key)] = automation
        stale: list[Path] = []
        with self._cond:
            for ident in [i for i in self._jobs if i not in wanted]:
                gone = self._jobs.pop(ident)
                self._forget(ident)
                if gone.kind == AUTOMATION_KIND:
                    gone.stale.append(worktree_path(gone.obj))
                    stale.extend(self._stale(gone))
            for (kind, key), obj in wanted.items():
                job = self._jobs.get((kind, key))
                if job is None:
                    self._jobs[(kind, key)] = _Job(kind, key, obj, due=time.monotonic())
                elif job.obj != obj:
                    if kind == AUTOMATION_KIND and worktree_path(obj) != worktree_path(job.obj):
                        job.stale.append(worktree_path(job.obj))
                        stale.extend(self._stale(job))
                    job.obj = obj
                    if kind == POLICY_KIND:
                        self._seen.evaluated.discard(key)  # its old choice may be wrong now
                    self._request(job)
            self._cond.notify_all()
        _discard(stale)

    def _stale(self, job: _Job) -> list[Path]:
        """The working trees ``job`` no longer uses, taken, unless its run is in flight
        (then its end discards them), less those an automation declared now uses (one
        removed and added again); condition held."""
        if job.running or not job.stale:
            return []
        stale, job.stale = job.stale, []
        used = {worktree_path(j.obj) for j in self._jobs.values() if j.kind == AUTOMATION_KIND}
        return [path for path in stale if path not in used]

    def keys(self, kind: ImageKind) -> list[str]:
        """The keys of the objects of ``kind`` being run, sorted."""
        with self._cond:
            return sorted(key for k, key in self._jobs if k == kind)

    def latest(self, policy_key: str) -> LatestImage | None:
        """The latest image policy ``policy_key`` chose in this process, if any."""
        with self._cond:
            return self._seen.latest.get(policy_key)

    def _forget(self, ident: tuple[str, str]) -> None:
        kind, key = ident
        if kind == POLICY_KIND:
            self._seen.latest.pop(key, None)
            self._seen.evaluated.discard(key)
        self._seen.failures.pop(ident, None)
        self._seen.written.pop(ident, None)
        if self._metrics is not None:
            if kind == POLICY_KIND:
                self._metrics.forget_policy(key)
            else:
                self._metrics.forget_automation(key)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the pool (again after :meth:`stop` is fine)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gitops-images")
            self._thread = threading.Thread(target=self._dispatch, name="gitops-images",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Start nothing new; let the runs in flight finish."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, pool = self._thread, self._pool
        if thread is not None:
            thread.join(timeout)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            self._thread = self._pool = None

    # -- scheduling ----------------------------------------------------------------------

    def _request(self, job: _Job) -> None:
        if job.running:
            job.again = True
        else:
            job.due = time.monotonic()

    def _dispatch(self) -> None:
        with self._cond:
            while not self._stopping:
                idle = [j for j in self._jobs.values() if not j.running]
                if not idle:
                    self._cond.wait()
                    continue
                job = min(idle, key=lambda j: j.due)
                delay = job.due - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                job.running, job.again = True, False
                assert self._pool is not None
                self._pool.submit(self._run, job)

    def _run(self, job: _Job) -> None:
        try:
            if job.kind == POLICY_KIND:
                self._evaluate(job.obj)
            else:
                self._automate(job.obj)
        except Exception:  # a bug here must not stop the schedule
            log.exception("%s %s: run failed", job.kind, job.key)
        finally:
            with self._cond:
                job.running = False
                interval = float(job.obj.spec.interval)
                job.due = time.monotonic() + (0.0 if job.again else interval * random.uniform(
                    1 - _JITTER, 1 + _JITTER))
                job.again = False
                stale = self._stale(job)
                self._cond.notify_all()
            _discard(stale)

    def _current(self, kind: ImageKind, key: str) -> Any:
        with self._cond:
            job = self._jobs.get((kind, key))
            return None if job is None else job.obj

    # -- ImagePolicy ---------------------------------------------------------------------

    def _evaluate(self, policy: ImagePolicy) -> None:
        key = policy.key
        with self._cond:
            with_digest = any(j.obj.spec.update.pin_digest for j in self._jobs.values()
                              if j.kind == AUTOMATION_KIND and j.namespace == policy.namespace)
        try:
            found = self._latest_fn(policy, with_digest=with_digest)
        except Exception as exc:
            message = f"ImagePolicy {key}: image {policy.spec.image}: {_said(exc)}"
            reason = ("NoMatchingTag" if isinstance(exc, NoMatchingTagError) else
                      "InvalidPolicy" if isinstance(exc, InputError) else "ScanFailed")
            self._failed(POLICY_KIND, key, reason, message, unexpected=not isinstance(
                exc, GitopsError))
            self._count(POLICY_KIND, key, lambda metrics: metrics.scanned(key, "error"))
            before = self._status(POLICY_KIND, key) or ImagePolicyStatus()
            self._write(POLICY_KIND, key, before.with_ready(False, reason, message))
            with self._cond:  # not applied until it chooses again
                if (POLICY_KIND, key) in self._jobs:
                    self._seen.evaluated.add(key)
                self._seen.latest.pop(key, None)
            return
        if self._current(POLICY_KIND, key) != policy:
            return  # replaced meanwhile: the new spec runs next
        with self._cond:
            moved = self._seen.latest.get(key) != found
            first = key not in self._seen.evaluated
        self._count(POLICY_KIND, key, lambda metrics: metrics.scanned(
            key, "success", image=found.image, tag=found.tag))
        if moved:
            log.info("ImagePolicy %s: latest image %s", key, found.reference,
                     extra={"policy": key, "reason": "LatestImage"})
        status = ImagePolicyStatus(latest_image=found.reference, latest_tag=found.tag,
                                   digest=found.digest)
        before = self._status(POLICY_KIND, key)
        if before is not None:
            status = status.model_copy(update={"conditions": before.conditions})
        self._write(POLICY_KIND, key, status.with_ready(
            True, "Succeeded", f"latest image {found.reference}"))
        with self._cond:  # after the status: an automation woken now reads it as recorded
            if (POLICY_KIND, key) not in self._jobs:
                return  # removed meanwhile: nothing of it is kept
            self._seen.latest[key] = found
            self._seen.evaluated.add(key)
            self._seen.failures.pop((POLICY_KIND, key), None)
        if moved or first:
            self._wake_automations(policy.namespace)

    def _wake_automations(self, namespace: str) -> None:
        with self._cond:
            for job in self._jobs.values():
                if job.kind == AUTOMATION_KIND and job.namespace == namespace:
                    self._request(job)
            self._cond.notify_all()

    # -- ImageUpdateAutomation -----------------------------------------------------------

    def _automate(self, automation: ImageUpdateAutomation) -> None:
        key = automation.key
        if automation.spec.suspend:
            log.debug("ImageUpdateAutomation %s is suspended", key)
            return
        with self._cond:
            policies = [j.obj for j in self._jobs.values()
                        if j.kind == POLICY_KIND and j.namespace == automation.namespace]
            if any(p.key not in self._seen.evaluated for p in policies):
                return  # a policy has not been evaluated yet: its evaluation wakes us
            choices = {p.ref: self._seen.latest[p.key] for p in policies
                       if p.key in self._seen.latest}
        before = self._status(AUTOMATION_KIND, key) or AutomationStatus()
        started, began = time.monotonic(), now()
        where = scrub(automation.spec.git.url)
        branch = automation.spec.git.push_branch
        if not choices:
            status = before.model_copy(update={"last_automation_run_time": began})
            self._write(AUTOMATION_KIND, key, status.with_ready(
                True, "NoLatestImage", f"nothing to apply: no ImagePolicy of namespace "
                f"{automation.namespace} has a latest image"))
            return
        try:
            credentials = self._credentials(automation) if self._credentials else None
            result = self._update_fn(automation, choices, credentials=credentials)
        except Exception as exc:
            message = f"ImageUpdateAutomation {key}: {where} ({branch}): {_said(exc)}"
            first = self._failed(AUTOMATION_KIND, key, "UpdateFailed", message,
                                 unexpected=not isinstance(exc, GitopsError))
            seconds = time.monotonic() - started
            self._count(AUTOMATION_KIND, key,
                        lambda metrics: metrics.updated(key, "error", seconds))
            if first and self._notifier is not None:
                self._notifier.notify(key, "ImageUpdateFailed", None, message)
            status = before.model_copy(update={"last_automation_run_time": began})
            self._write(AUTOMATION_KIND, key, status.with_ready(False, "UpdateFailed", message))
            return
        with self._cond:
            self._seen.failures.pop((AUTOMATION_KIND, key), None)
        seconds = time.monotonic() - started
        commit = result.commit
        pushed = result.pushed and commit is not None
        self._count(AUTOMATION_KIND, key, lambda metrics: metrics.updated(
            key, "pushed" if pushed else "unchanged", seconds))
        update: dict[str, Any] = {"last_automation_run_time": began}
        if not pushed:
            message = f"no change: {where} ({branch}) is up to date"
            self._write(AUTOMATION_KIND, key, before.model_copy(update=update).with_ready(
                True, "Succeeded", message))
            return
        assert commit is not None
        changed = _describe_changes(result.changes)
        message = f"pushed commit {commit[:12]} to {where} ({branch})" + (
            f": {changed}" if changed else "")
        log.info("ImageUpdateAutomation %s: %s", key, message,
                 extra={"automation": key, "revision": f"{branch}@sha1:{commit}",
                        "reason": "ImageUpdated"})
        update.update(last_push_commit=commit, last_push_time=now())
        self._write(AUTOMATION_KIND, key, before.model_copy(update=update).with_ready(
            True, "Succeeded", message))
        if self._notifier is not None:
            self._notifier.notify(key, "ImageUpdated", f"{branch}@sha1:{commit}", message)
        if self._on_push is not None:
            self._on_push(pushed_event(automation.spec.git.url, branch, commit))

    # -- status --------------------------------------------------------------------------

    def _failed(self, kind: ImageKind, key: str, reason: str, message: str, *,
                unexpected: bool) -> bool:
        """Log a failure once per distinct message; True when it is new."""
        with self._cond:
            if self._seen.failures.get((kind, key)) == message:
                return False
            if (kind, key) not in self._jobs:
                return False  # removed while it ran: not said, nothing kept
            self._seen.failures[(kind, key)] = message
        log.error("%s", message, exc_info=unexpected,
                  extra={"policy" if kind == POLICY_KIND else "automation": key,
                         "reason": reason})
        return True

    def _count(self, kind: ImageKind, key: str,
                record: Callable[[ImageMetrics], None]) -> None:
        """``record`` a run of ``key`` in the metrics unless it was removed meanwhile:
        under the condition, so its removal (which drops its series) comes wholly before
        (nothing recorded) or after (the series dropped), never a ghost series."""
        if self._metrics is None:
            return
        with self._cond:
            if (kind, key) in self._jobs:
                record(self._metrics)

    def _status(self, kind: ImageKind, key: str
                ) -> Any:  # ImagePolicyStatus | AutomationStatus | None
        try:
            return self._store.read(kind, key)
        except GitopsError as exc:
            log.warning("%s %s: cannot read its status: %s", kind, key, exc)
            return None

    def _write(self, kind: ImageKind, key: str,
               status: ImagePolicyStatus | AutomationStatus) -> None:
        """Store ``status`` unless it is what was written last (a steady state writes
        nothing); a failed write is logged, and retried at the next run."""
        data = status.to_dict()
        with self._cond:
            if self._seen.written.get((kind, key)) == data or (kind, key) not in self._jobs:
                return
        try:
            self._store.write(kind, key, status)
        except Exception as exc:
            log.warning("%s %s: cannot write its status: %s", kind, key, _said(exc))
            return
        with self._cond:
            if (kind, key) in self._jobs:  # not removed while it was written
                self._seen.written[(kind, key)] = data

    def __repr__(self) -> str:
        with self._cond:
            return f"ImageAutomation(objects={len(self._jobs)})"


def runner_for(runtime: Runtime, store: ImageStatusStore, *,
               notifier: ImageNotifier | None = None) -> ImageAutomation:
    """A runner with ``runtime``'s metrics registry and notifier (or ``notifier``), whose
    pushes go the way a webhook's do (the matching applications are reconciled at once,
    on whichever replica runs them), pushing with :func:`git_credentials`."""
    from gitops.images.metrics import ImageMetrics

    return ImageAutomation(store, metrics=ImageMetrics(runtime.metrics.registry),
                           notifier=notifier or runtime.notifier,
                           on_push=runtime.push_received,
                           credentials=lambda automation: git_credentials(
                               automation, runtime.operator.applications().values()))


def git_credentials(automation: ImageUpdateAutomation,
                    applications: Iterable[Application]) -> dict[str, Any]:
    """The Git credential options (``ssh_key``, ``username``/``password``, ``known_hosts``,
    ``ca_bundle``...) of the first Application of the automation's namespace, by name,
    whose source is the automation's repository: the repository the operator already
    reads is pushed to with the same credentials. Never another namespace's: a tenant
    must not push with someone else's key. Empty when there is none (the URL's userinfo
    and the ``GITOPS_GIT_*`` environment still apply)."""
    from gitops.sources.git.credentials import resolve_credentials

    wanted = normalize_repository(automation.spec.git.url)
    names = [p for p in inspect.signature(resolve_credentials).parameters
             if p not in ("url", "environ")]
    for app in sorted(applications, key=lambda a: a.key):
        if app.namespace != automation.namespace:
            continue
        try:
            found = source_repository(app.spec.source.url)
        except GitopsError:
            continue
        if found is not None and found[0] == wanted:
            return {k: v for k, v in app.spec.source.options.items() if k in names}
    return {}


def keep_images(runtime: Runtime, declared: Declarations) -> ImageAutomation | None:
    """What :meth:`Runtime.apply <gitops.operator.runtime.Runtime.apply>` does for image
    automation: the runtime's runner (started when the files first declare an image
    object, status in :class:`~gitops.images.status.FileImageStatusStore`) keeps the
    policies and automations ``declared`` holds; None while nothing was ever declared."""
    runner = runtime.images
    if runner is None:
        if not declared.of(POLICY_KIND) and not declared.of(AUTOMATION_KIND):
            return None
        from gitops.images.status import FileImageStatusStore

        runner = runner_for(runtime, FileImageStatusStore())
        runner.start()
    runner.apply(declared)
    return runner


def pushed_event(url: str, branch: str, commit: str) -> PushEvent:
    """A push of ``commit`` to ``branch`` of the repository ``url``, as a webhook would say
    it: the applications whose source follows that branch match it."""
    return PushEvent(provider="github",  # not read by matching: the shape all providers share
                     repositories=frozenset({normalize_repository(url)}),
                     ref=f"refs/heads/{branch}", branch=branch, tag=None, revision=commit)


def _discard(worktrees: Iterable[Path]) -> None:
    """Discard working trees no automation of this runner uses; failures only logged."""
    for path in worktrees:
        try:
            if not discard_worktree(path):
                log.info("working tree %s is in use by another process; kept", path)
        except OSError as exc:
            log.warning("cannot remove the working tree %s: %s", path, exc)


def _said(exc: BaseException) -> str:
    """An exception as one line for a status or log, without credentials."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return scrub(text)


def _describe_changes(updates: Iterable[FileUpdate]) -> str:
    """``deploy.yaml (HOST/app:1.0.0 -> HOST/app:1.1.0)``, from the file updates of a push."""
    parts = []
    for update in updates:
        moves = ", ".join(f"{c.old} -> {c.new}" for c in update.changes)
        parts.append(f"{update.path} ({moves})" if moves else update.path)
    return "; ".join(parts)
