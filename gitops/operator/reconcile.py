"""One application, reconciled once: plan, decide, sync, assess health, record status.

:class:`AppReconciler` keeps the application's source, target and
:class:`~gitops.engine.Reconciler` open between reconciles, so a steady-state cycle
pays only for what changed (the engine's memo) and writes nothing: the status is
written only when it differs from what is stored.

What a reconcile does, by trigger:

* automated (``interval``, ``watch``, ``webhook``, ``start``, ``reload``, ``dependency``):
  a new source revision is always applied (as Argo CD's automated sync does); drift at
  the revision already applied is fixed only with ``selfHeal: true``, otherwise reported
  (``OutOfSync``, a ``DriftDetected`` notification) until someone asks for a sync;
* ``manual`` (``gitops sync``): applied whatever ``selfHeal`` says;
* ``rollback``: a given earlier revision is applied (the caller suspends automation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gitops.apps.spec import Application
from gitops.appsets.sharing import FolderSource
from gitops.engine import Reconciler
from gitops.errors import GitopsError, InputError
from gitops.model import Action, Artifact, Event, HealthStatus, Outcome, Plan, SyncResult
from gitops.operator.status import (
    AppStatus,
    Condition,
    HealthState,
    StatusStore,
    SyncRecord,
    SyncResultName,
    Trigger,
    merged,
    now,
    short_revision,
)
from gitops.plugins import open_source, open_target
from gitops.sources.base import Source
from gitops.targets.base import Target
from gitops.urls import scrub

__all__ = ["AppReconciler", "ReconcileOutcome", "app_health"]

log = logging.getLogger("gitops.operator")

#: Notification reasons (``--notify``) a reconcile may report.
SYNC_SUCCEEDED = "SyncSucceeded"
SYNC_FAILED = "SyncFailed"
DRIFT_DETECTED = "DriftDetected"
HEALTH_DEGRADED = "HealthDegraded"

_AUTOMATED = frozenset({"interval", "watch", "webhook", "start", "reload", "dependency"})


@dataclass(frozen=True, slots=True)
class ReconcileOutcome:
    """What one reconcile found and did."""

    status: AppStatus
    #: notification reasons, in order (``SyncSucceeded``, ``DriftDetected``, …)
    reasons: tuple[str, ...] = ()
    #: the reconcile failed (the scheduler backs off before the next attempt)
    failed: bool = False
    #: the failure cannot be fixed by retrying (bad manifests or configuration)
    stalled: bool = False
    #: something was written to the target
    synced: bool = False
    seconds: float = 0.0


class _TimedSource(Source):
    """A source whose fetches are timed (``gitops_source_fetch_duration_seconds``)."""

    def __init__(self, inner: Source, observe: Callable[[float], None] | None,
                 pinned: str | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self._observe = observe
        self._pinned = pinned

    def identity(self) -> str:
        return self.inner.identity()

    #: the revision the last resolve gave (None: not resolved since :meth:`forget`)
    resolved: str | None = None

    def resolve(self) -> str:
        self.resolved = self._pinned if self._pinned is not None else self.inner.resolve()
        return self.resolved

    def fetch(self, revision: str) -> Artifact:
        started = time.perf_counter()
        try:
            return self.inner.fetch(revision)
        finally:
            if self._observe is not None:
                self._observe(time.perf_counter() - started)

    def close(self) -> None:
        return None  # the AppReconciler closes the inner source


def _own_source(app: Application) -> Source:
    return open_source(app.spec.source.url, **app.source_options)


def app_health(target: Target, plan: Plan, *, in_sync: bool | None = None) -> HealthState:
    """The application's health: the worst of its desired objects' health.

    A target with no health model (a file tree) reports an application in sync as
    Healthy (its objects are what the source declares) and one out of sync as Unknown.
    """
    if not target.supports_health:
        return "Healthy" if (plan.in_sync if in_sync is None else in_sync) else "Unknown"
    worst: HealthState = "Healthy"
    rank = {"Healthy": 0, "Unknown": 1, "Progressing": 2, "Missing": 3, "Degraded": 4}
    for resource in plan.desired:
        try:
            verdict = target.health(resource)
        except Exception as exc:  # a health check's failure is an Unknown, not a crash
            log.warning("health of %s unknown: %s", resource.key, exc)
            verdict = HealthStatus.UNKNOWN
        state: HealthState = (
            "Healthy" if verdict is HealthStatus.SUSPENDED else verdict.value  # type: ignore[assignment]
        )
        if rank[state] > rank[worst]:
            worst = state
    return worst


class AppReconciler:
    """Reconciles one :class:`~gitops.apps.Application`, keeping its plugins open.

    Not thread-safe by itself: the scheduler runs at most one reconcile of an
    application at a time (this class also holds a lock, for direct callers).
    """

    def __init__(
        self,
        app: Application,
        store: StatusStore,
        *,
        on_event: Callable[[Application, Event], None] | None = None,
        on_fetch: Callable[[float], None] | None = None,
        watch: Callable[[Application], None] | None = None,
        sources: Callable[[Application], Source] | None = None,
    ) -> None:
        self.app = app
        #: opens the application's source (``SharedSources.source_for``; default its own)
        self._open_source = sources or _own_source
        self._store = store
        self._on_event = on_event
        self._on_fetch = on_fetch
        self._on_drift = watch
        self._reconciler: Reconciler | None = None
        self._source: Source | None = None
        self._target: Target | None = None
        self._unwatch: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._status: AppStatus | None = None
        #: ``metadata.generation`` of the Application object (0 in files), as observed
        self.generation = 0
        self._reported: str | None = None  # the failure last reported (SyncFailed)

    # -- plugins -------------------------------------------------------------------------

    def _open(self) -> Reconciler:
        if self._reconciler is not None:
            return self._reconciler
        app = self.app
        source = self._open_source(app)
        try:
            target = open_target(app.spec.target.url, **app.target_options)
        except BaseException:
            source.close()
            raise
        self._source, self._target = source, target
        self._reconciler = self._engine(source, None)
        if self._on_drift is not None and target.supports_watch:
            try:
                self._unwatch = target.watch(lambda _event: self._drifted())
            except Exception as exc:
                log.warning("%s: cannot watch %s for drift: %s", app.key,
                            scrub(target.url), exc, extra={"app": app.key})
        return self._reconciler

    def _engine(self, source: Source, pinned: str | None) -> Reconciler:
        assert self._target is not None
        return Reconciler(
            _TimedSource(source, self._on_fetch, pinned), self._target,
            **self.app.reconciler_kwargs(), on_event=self._event,
        )

    def _drifted(self) -> None:
        if self._on_drift is not None:
            self._on_drift(self.app)

    def _event(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(self.app, event)

    def close(self) -> None:
        """Close the source and target; the next reconcile opens them again."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._unwatch is not None:
            try:
                self._unwatch()
            except Exception:
                log.debug("unwatch failed", exc_info=True)
            self._unwatch = None
        for plugin in (self._source, self._target):
            if plugin is not None:
                try:
                    plugin.close()
                except Exception:
                    log.warning("closing %s failed", type(plugin).__name__, exc_info=True)
        self._reconciler = self._source = self._target = None

    def update(self, app: Application) -> None:
        """Take a new version of the application; plugins reopen if source or target moved."""
        with self._lock:
            before = self.app
            self.app = app
            # a shared source's freshness window follows the interval it was opened with
            shared = isinstance(self._source, FolderSource)
            if (before.spec.source != app.spec.source or before.spec.target != app.spec.target
                    or before.reconciler_kwargs() != app.reconciler_kwargs()
                    or (shared and before.spec.interval != app.spec.interval)):
                self._close()

    # -- status --------------------------------------------------------------------------

    def stored_status(self) -> AppStatus:
        """The last status written (read from the store the first time)."""
        if self._status is None:
            self._status = self._store.read(self.app) or AppStatus()
        return self._status

    def forget_status(self) -> None:
        """Read the status from the store again next time (someone else may have written it)."""
        self._status = None

    def _save(self, status: AppStatus) -> AppStatus:
        """Write ``status`` if it changed, keeping what another process wrote meanwhile
        (``gitops suspend`` sets ``suspended``; ``gitops sync`` adds to the history)."""
        if status == self._status:
            return status
        seen = self._status

        def change(fresh: AppStatus | None) -> AppStatus:
            return merged(status, fresh) if fresh is not None and fresh != seen else status

        self._status = self._store.update(self.app, change)
        return self._status

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(self, trigger: Trigger, *, revision: str | None = None,
                  fresh_since: float | None = None) -> ReconcileOutcome:
        """Reconcile once; ``revision`` pins the source there (a rollback).

        ``fresh_since`` (``time.monotonic()``, when a webhook or a person asked): a
        shared source asks its remote unless it has an answer asked since then.

        Never raises for a failure of the application (it is in the outcome and the
        status); raises only if the status store itself cannot be written.
        """
        with self._lock:
            started = time.perf_counter()
            outcome = self._reconcile(trigger, revision, fresh_since)
            return replace(outcome, seconds=time.perf_counter() - started)

    def _reconcile(self, trigger: Trigger, revision: str | None,
                   fresh_since: float | None) -> ReconcileOutcome:
        app = self.app
        before = self.stored_status()
        engine: Reconciler | None = None
        try:
            engine = self._open()
            if fresh_since is not None and isinstance(self._source, FolderSource):
                self._source.require_fresh(fresh_since)
            if isinstance(engine.source, _TimedSource):
                engine.source.resolved = None
            if revision is not None:
                assert self._source is not None
                engine = self._engine(self._source, revision)
            plan = engine.plan()
        except GitopsError as exc:
            # a revision whose content is wrong (it cannot be rendered) is recorded as
            # attempted, so a rollout gating on it halts there; not a target or network
            # error, which is no fault of the revision. Sync stays Unknown: nothing planned.
            invalid = isinstance(exc, InputError)
            resolved = engine.source.resolved if invalid and engine is not None and isinstance(
                engine.source, _TimedSource) else None
            return self._failed(before, trigger, "", str(exc), stalled=invalid,
                                attempted=resolved)
        except Exception as exc:  # a plugin's bug: reported, never fatal to the operator
            log.exception("%s: reconcile failed unexpectedly", app.key, extra={"app": app.key})
            return self._failed(before, trigger, "", f"{type(exc).__name__}: {exc}",
                                stalled=False)
        new_revision = plan.revision != before.last_applied_revision
        drift = not plan.in_sync
        wanted = (
            trigger not in _AUTOMATED or new_revision or app.spec.self_heal
            or before.last_attempted_revision != before.last_applied_revision
        )
        reasons: list[str] = []
        if drift and not new_revision and before.sync != "OutOfSync":
            reasons.append(DRIFT_DETECTED)
        if (not drift or not wanted) and trigger not in ("manual", "rollback"):
            return self._observed(before, plan, reasons)  # a person's sync is always recorded
        return self._sync(engine, before, plan, trigger, reasons)

    def _observed(self, before: AppStatus, plan: Plan, reasons: list[str]) -> ReconcileOutcome:
        """Nothing to write: record what is (in sync, or drift left for a person to sync)."""
        self._reported = None
        assert self._target is not None
        health = app_health(self._target, plan)
        sync = "Synced" if plan.in_sync else "OutOfSync"
        kept = plan.in_sync and before.sync == "Synced" and before.message and \
            before.last_applied_revision == plan.revision
        message = (
            before.message if kept else f"in sync at {short_revision(plan.revision)}"
            if plan.in_sync
            else f"{len(plan.changes)} objects differ from {short_revision(plan.revision)}; "
                 "selfHeal is off: "
                 "run `gitops sync` to apply"
        )
        if health == "Degraded" and before.health != "Degraded":
            reasons.append(HEALTH_DEGRADED)
        update: dict[str, Any] = {
            "sync": sync, "health": health, "message": message,
            "resources": len(plan.desired),
            "observed_generation": self.generation,
        }
        if plan.in_sync:  # a new revision that changes nothing here is applied all the same
            update["last_applied_revision"] = update["last_attempted_revision"] = plan.revision
        status = self._conditions(before.model_copy(update=update), failed=False, stalled=False)
        return ReconcileOutcome(self._save(status), tuple(reasons))

    def _sync(self, engine: Reconciler, before: AppStatus, plan: Plan, trigger: Trigger,
              reasons: list[str]) -> ReconcileOutcome:
        assert self._target is not None
        try:
            result = engine.sync(plan)
        except GitopsError as exc:  # refused before writing (a stale plan, a conflict)
            return self._failed(before, trigger, plan.revision, str(exc),
                                stalled=isinstance(exc, InputError))
        except KeyboardInterrupt as exc:  # SyncInterrupted: record, then let it stop us
            partial = getattr(exc, "result", None)
            if isinstance(partial, SyncResult):
                self._record_result(before, partial, trigger, interrupted=True)
            raise
        except Exception as exc:
            log.exception("%s: sync failed unexpectedly", self.app.key,
                          extra={"app": self.app.key})
            return self._failed(before, trigger, plan.revision, f"{type(exc).__name__}: {exc}",
                                stalled=False)
        status, more = self._record_result(before, result, trigger)
        self._reported = None if result.succeeded else self._reported
        return ReconcileOutcome(status, (*reasons, *more), failed=not result.succeeded,
                                synced=bool(plan.changes))

    def _record_result(self, before: AppStatus, result: SyncResult, trigger: Trigger, *,
                       interrupted: bool = False) -> tuple[AppStatus, tuple[str, ...]]:
        assert self._target is not None
        plan = result.plan
        ok = result.succeeded and not interrupted
        counts = {"created": 0, "updated": 0, "deleted": 0, "failed": 0}
        for r in result.results:
            if r.hook is not None:  # hook runs are not the application's objects
                continue
            if r.outcome is Outcome.SUCCEEDED:
                counts[{Action.CREATE: "created", Action.UPDATE: "updated",
                        Action.DELETE: "deleted"}[r.change.action]] += 1
            elif r.outcome is Outcome.FAILED:
                counts["failed"] += 1
        counts["unchanged"] = plan.unchanged
        if ok:
            message = f"applied {short_revision(plan.revision)}: {len(plan.changes)} changes"
        else:
            first = next((r for r in result.results if r.outcome is Outcome.FAILED), None)
            detail = result.message or (
                f"{first.change.key}: {first.shown_message}" if first else "interrupted")
            message = f"sync of {short_revision(plan.revision)} failed: {detail}"
        health = app_health(self._target, plan, in_sync=True) if ok else (
            "Degraded" if any(r.health is HealthStatus.DEGRADED for r in result.results
                              if r.hook is None)
            else before.health if before.health != "Unknown" else "Progressing"
        )
        name: SyncResultName = "Interrupted" if interrupted else "Succeeded" if ok else "Failed"
        status = before.model_copy(update={
            "sync": "Synced" if ok else "OutOfSync",
            "health": health,
            "last_applied_revision": plan.revision if ok else before.last_applied_revision,
            "last_attempted_revision": plan.revision,
            "last_sync_time": now(),
            "message": message,
            "resources": len(plan.desired),
            "counts": counts,
            "observed_generation": self.generation,
        }).with_record(SyncRecord(revision=plan.revision, time=now(), result=name,
                                  trigger=trigger, message=message))
        status = self._conditions(status, failed=not ok, stalled=False)
        reasons = [SYNC_SUCCEEDED if ok else SYNC_FAILED]
        if health == "Degraded" and before.health != "Degraded":
            reasons.append(HEALTH_DEGRADED)
        return self._save(status), tuple(reasons)

    def _failed(self, before: AppStatus, trigger: Trigger, revision: str, message: str, *,
                stalled: bool, attempted: str | None = None) -> ReconcileOutcome:
        """A reconcile that could not plan or sync: recorded in the status and history.
        ``attempted``: the revision a failed plan had resolved (recorded as attempted)."""
        attempted = revision or attempted or before.last_attempted_revision
        status = before.model_copy(update={
            "sync": "Unknown" if not revision else "OutOfSync",
            "message": message,
            "last_attempted_revision": attempted,
            "observed_generation": self.generation,
        })
        record = SyncRecord(revision=attempted, time=now(),
                            result="Failed", trigger=trigger, message=message)
        last = before.history[-1] if before.history else None
        if last is None or (last.result, last.message, last.revision) != (
                record.result, record.message, record.revision):
            status = status.with_record(record)  # a failure repeated each retry is one entry
        # reported once per distinct failure and process (a restarted operator says it again)
        reasons: tuple[str, ...] = () if self._reported == message else (SYNC_FAILED,)
        self._reported = message
        status = self._conditions(status, failed=True, stalled=stalled)
        return ReconcileOutcome(self._save(status), reasons, failed=True, stalled=stalled)

    def _conditions(self, status: AppStatus, *, failed: bool, stalled: bool) -> AppStatus:
        """``Ready``, ``Reconciling`` and ``Stalled`` from the status (Kubernetes conventions)."""
        stamp = now()
        generation = status.observed_generation
        ready_ok = status.sync == "Synced" and status.health == "Healthy" and not failed
        if ready_ok:
            ready = ("True", "ReconciliationSucceeded",
                     f"applied revision {status.last_applied_revision}")
        elif failed:
            ready = ("False", "Stalled" if stalled else "ReconciliationFailed", status.message)
        elif status.sync == "OutOfSync":
            ready = ("False", "OutOfSync", status.message)
        else:
            ready = ("False", status.health, f"health is {status.health}")
        conditions = [
            Condition(type="Ready", status=ready[0], reason=ready[1], message=ready[2],
                      last_transition_time=stamp, observed_generation=generation),
        ]
        progressing = status.health == "Progressing" or (failed and not stalled)
        conditions.append(Condition(
            type="Reconciling", status="True" if progressing else "False",
            reason="Progressing" if status.health == "Progressing"
            else "RetryScheduled" if failed and not stalled else "Succeeded",
            message="" if not progressing else status.message,
            last_transition_time=stamp, observed_generation=generation,
        ))
        conditions.append(Condition(
            type="Stalled", status="True" if stalled else "False",
            reason="InvalidInput" if stalled else "Succeeded",
            message=status.message if stalled else "",
            last_transition_time=stamp, observed_generation=generation,
        ))
        return status.with_conditions(conditions)

