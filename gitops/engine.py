"""The reconcile engine: make a target converge on a source revision.

A short loop over stages that stand alone: the source resolves and fetches, the
renderer turns the artifact into validated resources, the target reports live
state, the differ decides what drifted, :mod:`gitops.ordering` orders the changes,
:mod:`gitops.inventory` decides what may be pruned. Everything is validated before
the first write. The engine imports no backend: sources, targets, differs and
renderers come in as objects or through the plugin registry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from gitops import inventory as inv
from gitops.differs.base import Differ
from gitops.errors import EmptySourceError, GitopsError, InputError, TransientError
from gitops.manifests import crd_kinds, gc_paused, place
from gitops.model import (
    Action,
    Artifact,
    Change,
    Event,
    HealthStatus,
    Inventory,
    Outcome,
    Plan,
    ReconcilerOptions,
    RenderContext,
    Resource,
    ResourceKey,
    ResourceResult,
    SyncResult,
)
from gitops.ordering import group_waves, sort_changes, wave_of
from gitops.plugins import open_differ, open_renderer, open_source, open_target
from gitops.renderers.base import Renderer
from gitops.sources.base import Source
from gitops.targets.base import Target

__all__ = ["Reconciler"]

log = logging.getLogger("gitops.engine")

EventHandler = Callable[[Event], None]


class Reconciler:
    """Reconciles one source into one target.

    ``source`` and ``target`` are plugin objects or URLs (opened through the plugin
    registry and closed with the reconciler). Options are validated by
    :class:`~gitops.model.ReconcilerOptions`; ``name`` names the inventory, so two
    reconcilers with different names can share a target without pruning each
    other's objects.
    """

    def __init__(
        self,
        source: Source | str,
        target: Target | str,
        *,
        differ: Differ | None = None,
        renderer: Renderer | None = None,
        on_event: EventHandler | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> None:
        try:
            self.options = ReconcilerOptions(**options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InputError(f"invalid reconciler options: {problems}") from exc
        self._owned: list[Source | Target] = []
        self.source = self._own(open_source(source)) if isinstance(source, str) else source
        self.target = self._own(open_target(target)) if isinstance(target, str) else target
        self.differ = differ if differ is not None else open_differ("structural")
        self.renderer = renderer if renderer is not None else open_renderer("yaml")
        self._handlers: list[EventHandler] = [on_event] if on_event else []
        self._sleep = sleep
        self._rendered: tuple[str, Artifact, tuple[Resource, ...]] | None = None

    # -- lifecycle ---------------------------------------------------------------

    def _own(self, obj: Any) -> Any:
        self._owned.append(obj)
        return obj

    @property
    def name(self) -> str:
        return self.options.name

    def close(self) -> None:
        """Close the source and target this reconciler opened from URLs."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def subscribe(self, handler: EventHandler) -> None:
        """Call ``handler`` with every :class:`~gitops.model.Event` from now on."""
        self._handlers.append(handler)

    def _emit(
        self, reason: str, message: str, *, key: ResourceKey | None = None,
        revision: str = "", warning: bool = False,
    ) -> None:
        event = Event(reason, message, key, revision, warning)
        log.log(logging.WARNING if warning else logging.INFO, "%s: %s", reason, message)
        for handler in self._handlers:
            handler(event)

    # -- plan --------------------------------------------------------------------

    def plan(self) -> Plan:
        """Compute the ordered changes that would make the target match the source.

        Reads only; raises a :class:`~gitops.errors.GitopsError` naming the input at
        fault (manifest, URL, resource) before anything could be written.
        """
        # Planning holds every desired and live manifest at once: millions of acyclic
        # containers the cyclic collector would rescan for nothing.
        with gc_paused():
            return self._plan()

    def _plan(self) -> Plan:
        revision = self.source.resolve()
        artifact, desired = self._render(revision)
        if not desired and self.options.prune and not self.options.allow_empty:
            raise EmptySourceError(
                f"{artifact.url}: the source renders no resources at {revision}; refusing to "
                "prune everything (pass allow_empty=True / --allow-empty to allow it)"
            )
        self.target.check(desired)
        desired = tuple(place(desired, is_namespaced=self.target.is_namespaced))
        policy = self.target.drift_policy()
        owned = self.target.read_inventory(self.name)
        current = owned if owned is not None else inv.EMPTY
        desired = tuple(self.target.own(r, self.name) for r in desired)
        keys = {r.key for r in desired} | current.keys
        live = self.target.live(sorted(keys))

        changes: list[Change] = []
        unchanged = 0
        for res in desired:
            was = live.get(res.key)
            if was is None:
                changes.append(Change(Action.CREATE, res.key, res.api_version, res, None, None,
                                      wave_of(res)))
                continue
            diff = self.differ.diff(res, was, policy)
            if diff.changed:
                changes.append(Change(Action.UPDATE, res.key, res.api_version, res, was, diff,
                                      wave_of(res)))
            else:
                unchanged += 1

        desired_keys = {r.key for r in desired}
        extraneous: list[ResourceKey] = []
        orphaned: list[ResourceKey] = []
        for key in sorted(current.keys - desired_keys):
            was = live.get(key)
            if was is None:
                continue  # already gone: dropped from the inventory on the next write
            if not self.options.prune:
                extraneous.append(key)
            elif inv.prune_disabled(was):
                orphaned.append(key)
            else:
                changes.append(Change(Action.DELETE, key, current.entries[key], None, was, None,
                                      wave_of(was)))

        plan = Plan(
            name=self.name,
            source=artifact.url,
            target=self.target.url,
            revision=revision,
            changes=sort_changes(changes),
            unchanged=unchanged,
            extraneous=tuple(extraneous),
            orphaned=tuple(orphaned),
            artifact=artifact,
            prune=self.options.prune,
            desired=desired,
            inventory=owned,
        )
        self._emit(
            "Planned",
            f"{len(plan.changes)} changes, {unchanged} unchanged at {revision}",
            revision=revision,
        )
        return plan

    def _render(self, revision: str) -> tuple[Artifact, tuple[Resource, ...]]:
        """Fetch and render ``revision``, reusing the last result for an unchanged revision."""
        if self._rendered is not None and self._rendered[0] == revision:
            return self._rendered[1], self._rendered[2]
        artifact = self.source.fetch(revision)
        context = RenderContext(revision=revision, tree=artifact.tree)
        desired = tuple(self.renderer.render(artifact.path, context))
        for res in desired:
            wave_of(res)  # validate sync-wave annotations before anything is planned
        self._rendered = (revision, artifact, desired)
        return artifact, desired

    # -- sync --------------------------------------------------------------------

    def sync(self, plan: Plan | None = None) -> SyncResult:
        """Plan (unless a plan is given) and apply it; report each resource's outcome.

        Nothing is written if any change fails validation. The inventory is widened
        before the first write and narrowed to the new set after success. Changes
        that fail are reported per resource; later waves and pruning are skipped.
        """
        started = datetime.now(UTC)
        if plan is None:
            plan = self.plan()
        elif plan.name != self.name:
            raise InputError(f"plan is for inventory {plan.name!r}, not {self.name!r}")
        results = self._dry_run(plan) if self.options.dry_run else self._execute(plan)
        result = SyncResult(plan, tuple(results), self.options.dry_run, started,
                            datetime.now(UTC))
        if result.succeeded:
            self._emit("SyncSucceeded", f"{plan.target} at {plan.revision}: "
                       f"{len(plan.changes)} changes", revision=plan.revision)
        else:
            self._emit("SyncFailed", f"{plan.target} at {plan.revision}: "
                       f"{len(result.failed)} of {len(plan.changes)} changes failed",
                       revision=plan.revision, warning=True)
        return result

    def _dry_run(self, plan: Plan) -> list[ResourceResult]:
        if not self.target.supports_dry_run:
            return [ResourceResult(c, Outcome.SKIPPED, "dry run") for c in plan.changes]
        waits = self._waits_for_prerequisite(plan)
        later = "dry run: validated when applied, after the Namespace or CRD this sync creates"
        return [
            ResourceResult(c, Outcome.SKIPPED, later) if waits(c) else self._attempt(c, dry_run=True)
            for c in plan.changes
        ]

    def _execute(self, plan: Plan) -> list[ResourceResult]:
        validation = self._validate(plan)
        if validation is not None:
            return validation
        old = plan.inventory if plan.inventory is not None else inv.EMPTY
        new = inv.from_resources(plan.desired)
        self._write_inventory(plan.inventory, inv.union(old, new))

        results: list[ResourceResult] = []
        blocked = ""
        for wave in group_waves(plan.changes):
            if blocked:
                results.extend(ResourceResult(c, Outcome.SKIPPED, blocked) for c in wave)
                continue
            outcomes = [self._attempt(c) for c in wave]
            if self.options.wait and self.target.supports_health:
                outcomes = self._wait_healthy(outcomes)
            results.extend(outcomes)
            failed = [r for r in outcomes if r.outcome is not Outcome.SUCCEEDED]
            if failed:
                blocked = f"not attempted: {failed[0].change.key} failed in an earlier wave"

        succeeded = all(r.outcome is Outcome.SUCCEEDED for r in results)
        kept = {
            r.change.key: r.change.api_version
            for r in results
            if r.change.action is Action.DELETE and r.outcome is not Outcome.SUCCEEDED
        }
        kept.update((k, old.entries[k]) for k in plan.extraneous)
        final = inv.with_entries(
            inv.from_resources(plan.desired, plan.revision if succeeded else old.revision), kept
        )
        self._write_inventory(plan.inventory, final)
        return results

    def _validate(self, plan: Plan) -> list[ResourceResult] | None:
        """Dry-run every apply first (where the target can); on failure write nothing."""
        if not self.target.supports_dry_run:
            return None
        waits = self._waits_for_prerequisite(plan)
        failures: list[ResourceResult] = []
        for change in plan.changes:
            if change.action is Action.DELETE or waits(change):
                continue
            result = self._attempt(change, dry_run=True)
            if result.outcome is Outcome.FAILED:
                failures.append(result)
        if not failures:
            return None
        why = f"not applied: validation of {failures[0].change.key} failed"
        failed = {r.change.key: r for r in failures}
        for r in failures:
            self._emit("ValidationFailed", r.message, key=r.change.key, warning=True)
        return [failed.get(c.key) or ResourceResult(c, Outcome.SKIPPED, why) for c in plan.changes]

    def _waits_for_prerequisite(self, plan: Plan) -> Callable[[Change], bool]:
        """A test: can this apply only be validated once a Namespace or CRD of the plan exists?

        Only for targets whose dry run needs them (``dry_run_needs_prerequisites``).
        """
        if not self.target.dry_run_needs_prerequisites:
            return lambda change: False
        created_namespaces = {
            c.key.name for c in plan.changes if c.action is Action.CREATE and c.key.kind == "Namespace"
            and not c.key.group
        }
        created_kinds = crd_kinds(c.desired for c in plan.changes if c.desired is not None)
        return lambda change: change.action is not Action.DELETE and (
            change.key.namespace in created_namespaces
            or (change.key.group, change.key.kind) in created_kinds
        )

    def _write_inventory(self, current: Inventory | None, wanted: Inventory) -> None:
        if not inv.same(current, wanted):
            self.target.write_inventory(self.name, wanted)

    def _attempt(self, change: Change, *, dry_run: bool = False) -> ResourceResult:
        """Apply or delete one resource, retrying transient failures with backoff."""
        delay = self.options.retry_backoff
        attempts = 0
        while True:
            attempts += 1
            try:
                if change.action is Action.DELETE:
                    self.target.delete(change.key, dry_run=dry_run)
                else:
                    assert change.desired is not None
                    self.target.apply(change.desired, dry_run=dry_run)
            except TransientError as exc:
                if attempts > self.options.retries:
                    return self._failed(change, str(exc), attempts)
                retry_after = getattr(exc, "retry_after", None)
                wait = float(retry_after) if retry_after is not None else delay
                self._sleep(min(wait, self.options.retry_max_delay))
                delay = min(delay * 2, self.options.retry_max_delay)
                continue
            except GitopsError as exc:
                return self._failed(change, str(exc), attempts)
            except Exception as exc:  # a plugin bug must not abort the other resources
                log.exception("unexpected error from %s on %s", self.target.url, change.key)
                return self._failed(change, f"{type(exc).__name__}: {exc}", attempts)
            if not dry_run:
                verb = {"create": "Created", "update": "Updated", "delete": "Pruned"}
                self._emit(verb[change.action.value], str(change.key), key=change.key)
            return ResourceResult(change, Outcome.SUCCEEDED, attempts=attempts)

    def _failed(self, change: Change, message: str, attempts: int) -> ResourceResult:
        self._emit("ApplyFailed", message, key=change.key, warning=True)
        return ResourceResult(change, Outcome.FAILED, message, attempts)

    def _wait_healthy(self, outcomes: list[ResourceResult]) -> list[ResourceResult]:
        """Poll the health of a wave's applied resources until Healthy, Degraded or timeout."""
        deadline = time.monotonic() + self.options.wait_timeout
        pending = {
            i: r for i, r in enumerate(outcomes)
            if r.outcome is Outcome.SUCCEEDED and r.change.desired is not None
        }
        final = list(outcomes)
        while pending:
            for i, r in list(pending.items()):
                assert r.change.desired is not None
                health = self.target.health(r.change.desired)
                if health is HealthStatus.HEALTHY:
                    final[i] = ResourceResult(r.change, r.outcome, r.message, r.attempts, health)
                    del pending[i]
                elif health is HealthStatus.DEGRADED:
                    final[i] = ResourceResult(r.change, Outcome.FAILED, "resource is Degraded",
                                              r.attempts, health)
                    del pending[i]
            if not pending:
                break
            if time.monotonic() >= deadline:
                for i, r in pending.items():
                    final[i] = ResourceResult(
                        r.change, Outcome.FAILED,
                        f"not healthy after {self.options.wait_timeout:g}s", r.attempts,
                        self.target.health(r.change.desired) if r.change.desired else None,
                    )
                break
            self._sleep(self.options.wait_interval)
        return final

    # -- continuous reconciliation ------------------------------------------------

    def run(
        self,
        interval: float = 60.0,
        *,
        stop: threading.Event | None = None,
        iterations: int | None = None,
        on_result: Callable[[SyncResult], None] | None = None,
    ) -> None:
        """Sync every ``interval`` seconds until ``stop`` is set (self-healing drift).

        Errors of one iteration are reported as ``ReconcileError`` events and do not
        end the loop; ``iterations`` bounds the loop (for tests and one-shot jobs). With a
        target that ``supports_watch``, drift it reports (``watch(handler)``) starts the
        next sync at once, after a ``DriftDetected`` event.
        """
        stop = stop or threading.Event()
        drift = threading.Event()
        unsubscribe = self._watch_drift(drift)
        count = 0
        try:
            while not stop.is_set() and (iterations is None or count < iterations):
                count += 1
                drift.clear()
                try:
                    result = self.sync()
                except GitopsError as exc:
                    self._emit("ReconcileError", str(exc), warning=True)
                else:
                    if on_result is not None:
                        on_result(result)
                if iterations is not None and count >= iterations:
                    break
                if unsubscribe is None:
                    stop.wait(interval)
                elif self._pause(stop, drift, interval):
                    self._emit("DriftDetected", f"{self.target.url}: an owned object changed")
        finally:
            if unsubscribe is not None:
                unsubscribe()

    def _watch_drift(self, drift: threading.Event) -> Callable[[], None] | None:
        """Subscribe to the target's drift events (``supports_watch``); None if it has none."""
        if not self.target.supports_watch:
            return None
        return self.target.watch(lambda _event: drift.set())

    @staticmethod
    def _pause(stop: threading.Event, drift: threading.Event, interval: float) -> bool:
        """Wait ``interval`` seconds, less if stopped or drift is seen; True on drift."""
        deadline = time.monotonic() + interval
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if drift.wait(min(remaining, 0.1)):
                return True
        return False

