"""Running the hooks of a sync: each created, awaited until it completes, cleaned up.

The hook half of :class:`gitops.Reconciler` (the :class:`HookRunner` mixin), beside the
state of one sync in progress (:class:`SyncState`). :mod:`gitops.hooks` reads and orders
hooks; this module makes their runs: a phase wave by wave, ``BeforeHookCreation``'s
delete awaited before a named hook is created again, each hook awaited through the
target's health (done once written on a target without a health model), then deleted
as its policy says. It writes only through the engine's ``_attempt`` (retries, events,
masking) and reads nothing but health, and the failed hook's status for its message.
Internal: not part of the public API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gitops import hooks
from gitops.errors import GitopsError
from gitops.health import failure_message
from gitops.hooks import HookRun
from gitops.manifests import CRD, crd_kind
from gitops.masking import redact_values, secret_values
from gitops.model import (
    Action,
    Change,
    HealthStatus,
    HookPhase,
    Outcome,
    Plan,
    ReconcilerOptions,
    Resource,
    ResourceKey,
    ResourceResult,
)
from gitops.targets.base import Target

__all__ = ["HookRunner", "SyncState", "masked"]

log = logging.getLogger("gitops.engine")

#: Where the wait for a hook ends: complete, failed, or gone (failed too).
_HOOK_SETTLED = frozenset({HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.MISSING})


@dataclass
class SyncState:
    """The state of one sync in progress: the engine's, and its hooks'."""

    #: why nothing more can be attempted (unreachable, credentials refused), or ""
    stopped: str = ""
    results: list[ResourceResult] = field(default_factory=list)
    #: the change being applied right now (for Ctrl-C), and its hook phase if a hook's
    in_flight: Change | None = None
    in_flight_hook: HookPhase | None = None
    #: the runs of hooks this sync may make, by phase (none when the plan has no changes)
    hook_runs: dict[HookPhase, list[HookRun]] = field(default_factory=dict)
    #: results of hook runs, in the order they ran; those still running, by index
    hook_results: list[ResourceResult] = field(default_factory=list)
    running_hooks: set[int] = field(default_factory=set)
    #: named hooks' objects on the target now (BeforeHookCreation deletes them first)
    hooks_present: set[ResourceKey] = field(default_factory=set)
    #: the first hook failure that decided the sync's fate, or ""
    message: str = ""


class HookRunner:
    """Runs a sync's hooks for :class:`gitops.Reconciler`, which provides ``_attempt``
    (one write, retried, reported) and ``_emit`` (one event)."""

    target: Target
    options: ReconcilerOptions
    _sleep: Callable[[float], None]

    def _attempt(
        self, change: Change, run: SyncState, *, dry_run: bool = False,
        hook: HookPhase | None = None,
    ) -> ResourceResult:
        raise NotImplementedError  # the engine's

    def _emit(
        self, reason: str, message: str, *, key: ResourceKey | None = None,
        revision: str = "", warning: bool = False,
    ) -> None:
        raise NotImplementedError  # the engine's

    def _prepare_hooks(self, plan: Plan, run: SyncState) -> None:
        """The runs of the plan's hooks in this sync: none when the plan changes nothing.

        Which named hooks exist comes from the plan's read of live state (a target may
        tie what it checks on writes to its last read, so a sync reads nothing more).
        """
        if not plan.changes or not plan.hooks:
            return
        run.hooks_present = {h.key for h in plan.hooks if h.key in plan.live}
        run.hook_runs = hooks.phase_runs(plan.hooks, run.hooks_present)

    def _needed_by_presync(self, plan: Plan, run: SyncState) -> list[Change]:
        """The plan's creations of a Namespace a PreSync hook lives in, or of a CRD that
        defines a PreSync hook's kind: applied before the PreSync phase (as Argo CD does)."""
        presync = run.hook_runs.get(HookPhase.PRE_SYNC)
        if not presync:
            return []
        namespaces = {r.key.namespace for r in presync}
        kinds = {(r.key.group, r.key.kind) for r in presync}
        return [
            c for c in plan.changes if c.action is Action.CREATE and c.desired is not None and (
                ((c.key.group, c.key.kind) == ("", "Namespace") and c.key.name in namespaces)
                or ((c.key.group, c.key.kind) == CRD and crd_kind(c.desired.manifest) in kinds)
            )
        ]

    def _run_hooks(self, phase: HookPhase, run: SyncState) -> str:
        """Run a phase's hooks wave by wave, each awaited; stop at the first that fails.

        Returns "" when all succeeded, else why what follows is not attempted.
        """
        runs = run.hook_runs.get(phase, [])
        if runs and run.stopped:
            self._skip_runs(run, runs, run.stopped)
            return run.stopped
        groups = hooks.waves(runs)
        for i, wave in enumerate(groups):
            failure = self._finish_hooks(self._start_hooks(wave, run), run)
            why = run.stopped or (f"not attempted: {failure}" if failure else "")
            if why:
                for later in groups[i + 1:]:
                    self._skip_runs(run, later, why)
                return why
        return ""

    def _skip_runs(self, run: SyncState, runs: Iterable[HookRun], why: str) -> None:
        """Record ``runs`` as not attempted, but those that already have a result."""
        done = {id(r.change) for r in run.hook_results}
        run.hook_results.extend(
            ResourceResult(r.change, Outcome.SKIPPED, why, hook=r.phase)
            for r in runs if id(r.change) not in done
        )

    def _skip_hooks(self, run: SyncState, phases: Iterable[HookPhase], why: str) -> None:
        for phase in phases:
            self._skip_runs(run, run.hook_runs.get(phase, ()), why)

    def _start_hooks(self, wave: Sequence[HookRun], run: SyncState) -> list[tuple[int, HookRun]]:
        """Create a wave of hooks (after deleting earlier instances where asked); returns
        each run with the index of its result."""
        started: list[tuple[int, HookRun]] = []
        for hook_run in wave:
            if run.stopped:
                result = ResourceResult(hook_run.change, Outcome.SKIPPED, run.stopped,
                                        hook=hook_run.phase)
            else:
                problem = self._remove_previous(hook_run, run)
                result = (self._attempt(hook_run.change, run, hook=hook_run.phase)
                          if not problem else ResourceResult(hook_run.change, Outcome.FAILED,
                                                             problem, hook=hook_run.phase))
            run.hook_results.append(result)
            index = len(run.hook_results) - 1
            started.append((index, hook_run))
            if result.outcome is Outcome.SUCCEEDED:
                run.hooks_present.add(hook_run.key)
                run.running_hooks.add(index)
        return started

    def _remove_previous(self, hook_run: HookRun, run: SyncState) -> str:
        """BeforeHookCreation: delete the named hook's earlier instance and wait until it
        is gone; returns why that failed, or ""."""
        if not hook_run.recreated or hook_run.key not in run.hooks_present:
            return ""
        result = self._delete_hook(hook_run, run)
        if result.outcome is not Outcome.SUCCEEDED:
            return f"its previous instance could not be deleted: {result.message}"
        if not self.target.supports_health:
            return ""  # without a health model, a delete is taken as done
        verdict = self._poll_health({0: hook_run.resource}, {HealthStatus.MISSING})[0]
        if verdict is HealthStatus.MISSING:
            return ""
        if isinstance(verdict, HealthStatus):
            return (f"its previous instance was still being deleted after "
                    f"{self.options.wait_timeout:g}s")
        return f"cannot tell whether its previous instance is gone: {verdict}"

    def _delete_hook(self, hook_run: HookRun, run: SyncState) -> ResourceResult:
        change = Change(Action.DELETE, hook_run.key, hook_run.change.api_version, None,
                        hook_run.resource)
        result = self._attempt(change, run, hook=hook_run.phase)
        if result.outcome is Outcome.SUCCEEDED:
            run.hooks_present.discard(hook_run.key)
        return result

    def _finish_hooks(self, started: Sequence[tuple[int, HookRun]], run: SyncState) -> str:
        """Await the completion of a wave of started hooks, apply their delete policies,
        and report each; returns the first failure ("PreSync hook ... failed"), or ""."""
        results = run.hook_results
        running = {i: hook_run.resource for i, hook_run in started if i in run.running_hooks}
        if running and run.stopped:  # created, but it can no longer be seen to complete
            for i in running:
                results[i] = replace(results[i], outcome=Outcome.FAILED,
                                     message=f"not awaited ({run.stopped})")
        elif running and self.target.supports_health:
            for i, verdict in self._poll_health(running, _HOOK_SETTLED).items():
                results[i] = self._hook_verdict(results[i], verdict)
        run.running_hooks.difference_update(running)
        failure = ""
        for i, hook_run in started:
            result = results[i]
            if result.outcome is Outcome.SKIPPED:
                continue
            succeeded = result.outcome is Outcome.SUCCEEDED
            if succeeded:
                self._emit("HookSucceeded", hook_run.describe(), key=hook_run.key)
            elif i in running or not result.attempts:  # apply failures reported as they happened
                self._emit("HookFailed", f"{hook_run.describe()}: {result.shown_message}",
                           key=hook_run.key, warning=True)
            if i in running and hook_run.deletes_on(succeeded) and not run.stopped:
                self._delete_hook(hook_run, run)
            if not succeeded and not failure:
                failure = f"{hook_run.describe()} failed"
                run.message = run.message or f"{failure}: {result.shown_message}"
        return failure

    def _hook_verdict(self, result: ResourceResult, verdict: HealthStatus | str) -> ResourceResult:
        """A started hook's result once its health is known (or the wait ended)."""
        if not isinstance(verdict, HealthStatus):
            return replace(result, outcome=Outcome.FAILED, message=verdict)
        done = hooks.completion(verdict)
        if done:
            return replace(result, health=verdict)
        if done is None:
            message = (f"did not complete within {self.options.wait_timeout:g}s "
                       f"(still {verdict.value})")
        elif verdict is HealthStatus.MISSING:
            message = "deleted before it was seen to complete"
        else:
            message = self._failure_reason(result) or f"the hook is {verdict.value}"
        return replace(result, outcome=Outcome.FAILED, message=message, health=verdict)

    def _failure_reason(self, result: ResourceResult) -> str:
        """What the live object's status says about its failure ("" when nothing).

        Read only once a hook failed: nothing is pruned after that in this sync, so a
        target that ties its delete checks to its last read loses nothing.
        """
        try:
            live = self.target.live([result.change.key]).get(result.change.key)
        except Exception:  # the reason is a courtesy: the verdict stands without it
            return ""
        return masked(result.change, failure_message(live.manifest if live else None))

    # -- health ------------------------------------------------------------------

    def _health(self, resource: Resource) -> HealthStatus | str:
        """The target's health verdict, or the message of what it raised."""
        try:
            return self.target.health(resource)
        except Exception as exc:  # a health check's failure is a result, not a crash
            message = redact_values(f"health check failed: {type(exc).__name__}: {exc}",
                                    secret_values(resource.manifest))
            if not isinstance(exc, GitopsError):
                log.error("%s on %s: %s", resource.key, self.target.url, message)
            return message

    def _poll_health(
        self, resources: Mapping[int, Resource], settled: Container[HealthStatus]
    ) -> dict[int, HealthStatus | str]:
        """Poll each resource's health until it is in ``settled`` or its check fails (the
        failure's message), for at most ``wait_timeout``; what is unsettled by then maps
        to the last health seen (not in ``settled``)."""
        deadline = time.monotonic() + self.options.wait_timeout
        pending = dict(resources)
        verdicts: dict[int, HealthStatus | str] = {}
        while pending:
            for i, resource in list(pending.items()):
                verdict = verdicts[i] = self._health(resource)
                if not isinstance(verdict, HealthStatus) or verdict in settled:
                    del pending[i]
            if not pending or time.monotonic() >= deadline:
                break
            self._sleep(self.options.wait_interval)
        return verdicts


def masked(change: Change, text: str) -> str:
    """``text`` with the values of the change's Secret (desired or live) masked."""
    values = [v for r in (change.desired, change.live) if r is not None
              for v in secret_values(r.manifest)]
    return redact_values(text, sorted(set(values), key=len, reverse=True)) if values else text
