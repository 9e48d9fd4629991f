"""The operator's scheduler: keep many applications converged with a bounded worker pool.

Each application is reconciled once at start, then every ``spec.interval`` (with
jitter, so a thousand applications with the same interval do not all poll at once),
at once when something asks (a target watch event, a webhook, ``gitops sync``, a
dependency that became Ready), and after a failure on ``spec.retry``'s exponential
backoff; one found Progressing (a rollout under way) is looked at again after 1s, 2s,
4s... up to its interval, so it turns Ready soon after it settled. At most one
reconcile of an application runs at a time; a request that
arrives meanwhile runs right after it. ``spec.dependsOn`` holds an application back
until every application it names is Ready. ``spec.suspend`` (or ``gitops suspend``)
stops automated reconciles; :meth:`Operator.stop` lets the syncs in flight finish.

Everything here is in-process and backend-neutral: where applications come from (files,
a cluster) and where their status goes is the caller's (:class:`StatusStore`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from gitops.apps.spec import Application
from gitops.appsets.sharing import SharedSources, operator_freshness
from gitops.model import Event
from gitops.operator.deletion import DeletionResult, delete_application
from gitops.operator.reconcile import AppReconciler, ReconcileOutcome
from gitops.operator.status import AppStatus, StatusStore, Trigger

__all__ = ["Metrics", "Notifier", "Operator", "StatusCallback"]

log = logging.getLogger("gitops.operator")

#: ``callback(app, status, reason)`` after each reconcile, once per reason (``SyncSucceeded``…).
StatusCallback = Callable[[Application, AppStatus, str], None]

_DEPENDENCY_RECHECK = 30.0  # seconds between looks at a dependency that is not Ready
_PROGRESSING_RECHECK = 1.0  # seconds to the first look again at an application Progressing


class Metrics(Protocol):
    """What the scheduler reports to (``gitops.operator.metrics.OperatorMetrics``)."""

    def reconciled(self, app: str, result: Literal["success", "error"], seconds: float
                   ) -> None: ...
    def app_state(self, app: str, *, out_of_sync: bool, healthy: bool, resources: int) -> None: ...
    def source_fetched(self, seconds: float) -> None: ...
    def forget(self, app: str) -> None: ...


class Notifier(Protocol):
    """Where notifications go (``gitops.operator.notify.Notifier``); must not block."""

    def notify(self, app: str, reason: str, revision: str, message: str) -> None: ...


@dataclass(slots=True)
class _Entry:
    app: Application
    runner: AppReconciler
    due: float = 0.0
    trigger: Trigger = "start"
    failures: int = 0
    running: bool = False
    #: a request that came while running: run again right after
    again: Trigger | None = None
    removed: bool = False
    token: int = 0
    ready: bool = False
    generation: int = 0
    #: reconciles in a row that found it Progressing (backs off the next look)
    progressing: int = 0
    #: removed to be deleted: its objects are pruned (Operator.delete)
    deleting: bool = False
    #: when a webhook or ``gitops sync`` last asked (``time.monotonic()``), not yet served
    asked: float | None = None


class Operator:
    """Keeps a set of applications converged; see the module documentation."""

    def __init__(
        self,
        store: StatusStore,
        *,
        workers: int = 4,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        jitter: float = 0.1,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._store = store
        self._workers = workers
        self._metrics = metrics
        self._notifier = notifier
        self._jitter = jitter
        self._random = random.Random(seed)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._draining: dict[str, _Entry] = {}  # removed while a reconcile of theirs runs
        #: status of an application this scheduler does not run (another shard's), or None
        self.dependency_status: Callable[[str], AppStatus | None] = lambda _key: None
        self._waiting_logged: set[tuple[str, str]] = set()
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._callbacks: list[StatusCallback] = []
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._active = 0
        self._pending_deletions: list[_Entry] = []  # asked for before start()
        #: the applications' Git sources, one per repository, ref and options
        self.sources = SharedSources(freshness=operator_freshness)

    # -- the application set ---------------------------------------------------------------

    def set_applications(self, apps: Iterable[Application]) -> None:
        """Make ``apps`` the set kept converged: new and changed ones are reconciled at once,
        ones no longer listed are dropped (their objects stay: removing an application
        from the operator is not deleting it)."""
        wanted = {app.key: app for app in apps}
        with self._cond:
            for key in [k for k in self._entries if k not in wanted]:
                self._remove(key)
            for app in wanted.values():
                self._upsert(app)
            self._cond.notify_all()

    def upsert(self, app: Application, *, generation: int = 0) -> None:
        """Add ``app``, or take its new version (reconciled at once if it changed).

        ``generation``: the ``metadata.generation`` of its object, reported as the
        status's ``observedGeneration``.
        """
        with self._cond:
            self._upsert(app, generation)
            self._cond.notify_all()

    def remove(self, key: str) -> bool:
        """Stop keeping application ``key`` converged; False if unknown. Its objects stay."""
        with self._cond:
            if key not in self._entries:
                return False
            self._remove(key)
            return True

    def delete(self, key: str, app: Application | None = None) -> bool:
        """Stop reconciling ``key`` and delete its objects on a worker (after the reconcile
        of it in flight, if any): :func:`~gitops.operator.deletion.delete_application`
        prunes what its inventory owns and drops its inventory and status record.

        ``app``: the application to delete when this scheduler does not run it. A failed
        deletion is retried on ``spec.retry``'s backoff; adding the application again
        before it is done cancels what is not done yet. False if ``key`` is unknown.
        """
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                if app is None or key in self._draining:
                    return key in self._draining
                entry = _Entry(app, self._runner(app), removed=True)
            else:
                self._remove(key)
            entry.deleting = True
            entry.failures = 0
            if not entry.running:
                self._draining[key] = entry
                self._start_deletion(entry)
            return True

    def _start_deletion(self, entry: _Entry) -> None:
        """Run the deletion of ``entry`` on a worker (condition held)."""
        if self._pool is None or self._stopping:
            if entry not in self._pending_deletions:
                self._pending_deletions.append(entry)
            return
        entry.running = True
        entry.token = 0  # a reconcile still in the heap must not run beside the deletion
        self._active += 1
        try:
            self._pool.submit(self._delete_work, entry)
        except RuntimeError:  # shut down meanwhile
            entry.running = False
            self._active -= 1

    def _delete_work(self, entry: _Entry) -> None:
        app = entry.app
        result: DeletionResult | None = None
        error = ""
        try:
            result = delete_application(app, on_event=lambda event: _log_event(app, event))
        except Exception as exc:  # a target that cannot be read: try again later
            error = str(exc)
        with self._cond:
            self._active -= 1
            entry.running = False
            self._cond.notify_all()
            if not entry.removed:  # added again meanwhile: reconcile it (objects come back)
                entry.deleting = False
                entry.runner.update(entry.app)
                self._schedule(entry, 0.0, entry.again or "start")
                entry.again = None
                return
            done = result is not None and result.succeeded
            delay = None if done else app.spec.retry.delay(entry.failures + 1)
            said = entry.failures > 0 and delay is not None  # notified once, and when given up
            if done or delay is None or self._stopping:
                if self._draining.get(app.key) is entry:
                    del self._draining[app.key]
                self._retire(entry)
            else:
                entry.failures += 1
                timer = threading.Timer(delay, self._retry_deletion, (entry,))
                timer.daemon = True
                timer.start()
        if result is not None and result.succeeded:
            self._notify(app.key, "ApplicationDeleted", result.message, logging.INFO)
            return
        why = error or (result.message if result is not None else "")
        if delay is not None:
            why += f"; retrying in {delay:g}s"
        self._notify(app.key, "DeletionFailed", why, logging.WARNING, notify=not said)

    def _retry_deletion(self, entry: _Entry) -> None:
        with self._cond:
            if self._draining.get(entry.app.key) is entry and entry.removed and not entry.running:
                self._start_deletion(entry)

    def _notify(self, key: str, reason: str, message: str, level: int, *,
                notify: bool = True) -> None:
        log.log(level, "%s: %s: %s", key, reason, message, extra={"app": key, "reason": reason})
        if self._notifier is not None and notify:
            try:
                self._notifier.notify(key, reason, "", message)
            except Exception:
                log.exception("notification failed")

    def _upsert(self, app: Application, generation: int = 0) -> None:
        """Add or update ``app`` (condition held). A new or changed application's source
        answers from the remote as it is now, not from an answer shared before it came
        (the folder a set generated it for may be in a commit that answer predates)."""
        entry = self._entries.get(app.key)
        draining = self._draining.pop(app.key, None) if entry is None else None
        if draining is not None:  # removed while reconciling, back again: the same entry
            draining.removed = False
            self._entries[app.key] = draining
            draining.app, draining.generation, draining.again = app, generation, "start"
            draining.asked = time.monotonic()
            if not draining.running:  # a deletion waiting to be retried: cancelled
                draining.deleting, draining.again = False, None
                draining.runner.update(app)
                self._schedule(draining, 0.0, "start")
            return
        if entry is None:
            self._entries[app.key] = entry = _Entry(app, self._runner(app), generation=generation,
                                                    asked=time.monotonic())
            entry.runner.generation = generation
            self._schedule(entry, 0.0, "start")
        elif entry.app != app or entry.generation != generation:
            changed = entry.app != app
            entry.app = app
            entry.generation = generation
            if not entry.running:  # else taken when the reconcile in flight ends
                entry.runner.update(app)
                entry.runner.generation = generation
            if changed:
                entry.failures = 0
                entry.asked = time.monotonic()
                if entry.running:
                    entry.again = "reload"
                else:
                    self._schedule(entry, 0.0, "reload")

    def _runner(self, app: Application) -> AppReconciler:
        return AppReconciler(
            app, self._store, on_event=_log_event,
            on_fetch=self._metrics.source_fetched if self._metrics is not None else None,
            watch=self._watched, sources=self.sources.open_source,
        )

    def _watched(self, app: Application) -> None:
        """A target reported drift of one of ``app``'s objects: reconcile it now."""
        self.trigger(app.key, "watch")

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        entry.removed = True
        if entry.running:
            self._draining[key] = entry  # a re-add waits for this reconcile to end
        else:
            self._retire(entry)
        if self._metrics is not None:
            self._metrics.forget(key)
        self._waiting_logged = {pair for pair in self._waiting_logged if pair[0] != key}

    def _retire(self, entry: _Entry) -> None:
        """Close a removed application's plugins, and let the store drop what it keeps
        for it (``TargetStatusStore.release``: its target handle), condition held."""
        entry.runner.close()
        release = getattr(self._store, "release", None)
        if release is not None:
            try:
                release(entry.app)
            except Exception:
                log.warning("%s: releasing its status store failed", entry.app.key,
                            exc_info=True)

    def applications(self) -> dict[str, Application]:
        """The applications kept converged, by key (``namespace/name``)."""
        with self._cond:
            return {k: e.app for k, e in self._entries.items()}

    def status(self, key: str) -> AppStatus | None:
        """The last status of application ``key`` (None if unknown or never reconciled)."""
        with self._cond:
            entry = self._entries.get(key)
        return None if entry is None else entry.runner.stored_status()

    def stored_status(self, app: Application) -> AppStatus | None:
        """The last status of ``app``: this scheduler's when it runs it, else what the store
        holds (an application not given to the scheduler yet, after a restart)."""
        with self._cond:
            entry = self._entries.get(app.key)
        return entry.runner.stored_status() if entry is not None else self._store.read(app)

    def on_status(self, callback: StatusCallback) -> None:
        """Call ``callback(app, status, reason)`` after each reconcile, once per reason."""
        self._callbacks.append(callback)

    def trigger(self, key: str, reason: Trigger) -> bool:
        """Reconcile ``key`` as soon as a worker is free; False if no such application."""
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                return False
            self._request(entry, reason)
            self._cond.notify_all()
            return True

    def _request(self, entry: _Entry, reason: Trigger) -> None:
        """Reconcile ``entry`` now, or right after the reconcile of it in flight."""
        if reason in ("webhook", "manual"):  # its source must ask the remote from now on
            entry.asked = time.monotonic()
        if entry.running:
            entry.again = reason
        else:
            self._schedule(entry, 0.0, reason)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the worker pool."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gitops-worker")
            self._thread = threading.Thread(target=self._dispatch, name="gitops-scheduler",
                                            daemon=True)
            self._thread.start()
            pending, self._pending_deletions = self._pending_deletions, []
            for entry in pending:
                if entry.removed:
                    self._start_deletion(entry)

    def stop(self, timeout: float | None = None) -> None:
        """Stop scheduling; let the reconciles in flight finish; close every application."""
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
            for entry in self._entries.values():
                entry.runner.close()
        self.sources.close()

    @property
    def idle(self) -> bool:
        """No reconcile is running or due now."""
        with self._cond:
            due = self._heap and self._heap[0][0] <= self._clock()
            return self._active == 0 and not due

    # -- scheduling ------------------------------------------------------------------------

    def _schedule(self, entry: _Entry, delay: float, trigger: Trigger) -> None:
        """(Re)schedule ``entry`` ``delay`` seconds from now (an earlier time wins)."""
        due = self._clock() + delay
        if entry.token and entry.due <= due:
            return  # already due sooner
        entry.token = next(self._seq)
        entry.due, entry.trigger = due, trigger
        heapq.heappush(self._heap, (due, entry.token, entry.app.key))
        if len(self._heap) > 2 * len(self._entries) + 64:
            # superseded times (a webhook before the interval came) and removed
            # applications' wait in the heap until due: drop them before they pile up
            self._heap = [item for item in self._heap if self._current(item)]
            heapq.heapify(self._heap)

    def _current(self, item: tuple[float, int, str]) -> bool:
        """Whether a heap item is its application's scheduled time (not superseded)."""
        entry = self._entries.get(item[2])
        return entry is not None and entry.token == item[1]

    def _interval(self, entry: _Entry) -> float:
        base = float(entry.app.spec.interval)
        return base * (1 + self._jitter * (2 * self._random.random() - 1))

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                entry = self._next_due()
                if entry is None:
                    return
                entry.running = True
                entry.token = 0
                trigger = entry.trigger
                asked, entry.asked = entry.asked, None
                self._active += 1
            assert self._pool is not None
            try:
                self._pool.submit(self._work, entry, trigger, asked)
            except RuntimeError:  # shut down meanwhile
                with self._cond:
                    entry.running = False
                    self._active -= 1
                return

    def _next_due(self) -> _Entry | None:
        """Wait for the next entry due (with the condition held); None when stopping."""
        while not self._stopping:
            now = self._clock()
            while self._heap:
                if not self._current(self._heap[0]):
                    heapq.heappop(self._heap)  # superseded or removed
                    continue
                due, _token, key = self._heap[0]
                entry = self._entries[key]
                if due > now:
                    break
                if self._active >= self._workers:
                    break
                heapq.heappop(self._heap)
                entry.token = 0
                if not self._may_run(entry):
                    continue
                return entry
            wait = self._heap[0][0] - now if self._heap and self._active < self._workers else None
            self._cond.wait(timeout=None if wait is None else max(wait, 0.0))
        return None

    def _may_run(self, entry: _Entry) -> bool:
        """Dependencies: reschedules an entry whose dependencies are not Ready yet."""
        app = entry.app
        waiting = [d for d in app.dependencies if not self._ready(d)]
        if waiting and entry.trigger != "manual":
            for dep in waiting:  # said once per dependency, louder when it is unknown here
                if (app.key, dep) not in self._waiting_logged:
                    self._waiting_logged.add((app.key, dep))
                    known = dep in self._entries or self.dependency_status(dep) is not None
                    log.log(logging.INFO if known else logging.WARNING,
                            "%s: waiting for %s to be Ready%s", app.key, dep,
                            "" if known else " (no such application is known)",
                            extra={"app": app.key, "reason": "DependencyNotReady"})
            self._schedule(entry, min(float(app.spec.interval), _DEPENDENCY_RECHECK), "dependency")
            return False
        return True

    def _ready(self, key: str) -> bool:
        """Whether dependency ``key`` is Ready: as last reconciled here, else as its stored
        status says (suspended here, or reconciled by another replica)."""
        entry = self._entries.get(key)
        if entry is not None and entry.ready:
            return True
        try:
            status = (entry.runner.stored_status() if entry is not None
                      else self.dependency_status(key))
        except Exception:
            return False
        return status is not None and status.ready

    # -- work ------------------------------------------------------------------------------

    def _work(self, entry: _Entry, trigger: Trigger, asked: float | None = None) -> None:
        app = entry.app
        outcome: ReconcileOutcome | None = None
        skipped = False
        try:
            entry.runner.forget_status()  # `gitops sync`/`suspend` may have written it
            if trigger != "manual" and (app.spec.suspend or entry.runner.stored_status().suspended):
                skipped = True
            else:
                outcome = entry.runner.reconcile(trigger, fresh_since=asked)
        except Exception as exc:  # the status store failed: keep the operator alive
            log.error("%s: reconcile failed: %s", app.key, exc, extra={"app": app.key})
        finally:
            with self._cond:
                if asked is not None and entry.asked is None and (
                        outcome is None or outcome.failed):
                    # not served (it may have failed before its source was asked, opening
                    # its target): the retry must not take an answer from before either
                    entry.asked = asked
                self._finish(entry, outcome, skipped=skipped)
                if outcome is not None and not entry.removed:
                    # under the condition: a removal (which drops the series) is either
                    # before, and nothing is recorded, or after
                    self._record(entry.app, outcome)
                self._cond.notify_all()
        if outcome is not None:
            self._report(entry.app, outcome)

    def _finish(self, entry: _Entry, outcome: ReconcileOutcome | None, *,
                skipped: bool = False) -> None:
        """Bookkeeping after a reconcile (condition held): next due time, dependents."""
        self._active -= 1
        entry.running = False
        if entry.runner.app != entry.app or entry.runner.generation != entry.generation:
            entry.runner.update(entry.app)  # a new version came while it ran
            entry.runner.generation = entry.generation
        if entry.removed:
            if entry.deleting:  # Operator.delete came while it ran: delete it now
                self._start_deletion(entry)
                return
            if self._draining.get(entry.app.key) is entry:
                del self._draining[entry.app.key]
            self._retire(entry)
            return
        if skipped:  # suspended: look again at the next interval
            entry.again = None
            self._schedule(entry, self._interval(entry), "interval")
            return
        failed = outcome is None or outcome.failed
        was_ready = entry.ready
        entry.ready = outcome is not None and outcome.status.ready
        if failed:
            entry.failures += 1
            delay = entry.app.spec.retry.delay(entry.failures)
            if outcome is not None and outcome.stalled:
                delay = None
        else:
            entry.failures, delay = 0, None
            if outcome is not None and outcome.status.health == "Progressing":
                # a rollout under way: look again soon (1s, 2s, 4s... up to the interval)
                # rather than leave it not Ready for a whole interval after it settled
                delay = min(_PROGRESSING_RECHECK * 2 ** entry.progressing,
                            float(entry.app.spec.interval))
                entry.progressing += 1
            else:
                entry.progressing = 0
        if entry.again is not None:
            trigger, entry.again = entry.again, None
            self._schedule(entry, 0.0, trigger)
        else:
            self._schedule(entry, delay if delay is not None else self._interval(entry),
                           "interval")
        if entry.ready and not was_ready:
            for other in self._entries.values():
                if entry.app.key in other.app.dependencies:
                    self._request(other, "dependency")

    def _record(self, app: Application, outcome: ReconcileOutcome) -> None:
        """The metrics of one reconcile of ``app`` (not removed meanwhile)."""
        status = outcome.status
        if self._metrics is not None:
            try:
                self._metrics.reconciled(app.key, "error" if outcome.failed else "success",
                                         outcome.seconds)
                self._metrics.app_state(app.key, out_of_sync=status.sync != "Synced",
                                        healthy=status.health == "Healthy",
                                        resources=status.resources)
            except Exception:
                log.exception("metrics update failed")

    def _report(self, app: Application, outcome: ReconcileOutcome) -> None:
        status = outcome.status
        revision = status.last_attempted_revision or status.last_applied_revision
        for reason in outcome.reasons:
            level = logging.WARNING if reason in ("SyncFailed", "HealthDegraded",
                                                  "DriftDetected") else logging.INFO
            log.log(level, "%s: %s: %s", app.key, reason, status.message,
                    extra={"app": app.key, "revision": revision, "reason": reason})
            if self._notifier is not None:
                try:
                    self._notifier.notify(app.key, reason, revision, status.message)
                except Exception:
                    log.exception("notification failed")
            for callback in self._callbacks:
                try:
                    callback(app, status, reason)
                except Exception:
                    log.exception("status callback failed")


def _log_event(app: Application, event: Event) -> None:
    """Engine events go to the log, with the application's fields."""
    log.log(logging.WARNING if event.warning else logging.DEBUG, "%s: %s: %s", app.key,
            event.reason, event.message,
            extra={"app": app.key, "revision": event.revision, "reason": event.reason})
