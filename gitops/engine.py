"""The reconcile engine: make a target converge on a source revision.

A short loop over stages that stand alone: the source resolves and fetches, the
renderer turns the artifact into validated resources, :func:`gitops.manifests.place`
settles their scope on this target, the target reports live state, the differ decides
what drifted under the target's drift policy, :mod:`gitops.ordering` orders the changes,
:mod:`gitops.inventory` decides what may be pruned. Resources annotated as hooks
(:mod:`gitops.hooks`) are not desired state: a sync that applies changes runs them in
their phases (:mod:`gitops.hookrun`). Everything is validated before the first write.
The engine imports no backend: sources, targets, differs and renderers come in as
objects or through the plugin registry.

Built to run for months (``run()``, an operator): a plan pays for what changed. The
render is cached by revision (a pure function of the artifact; the YAML renderer also
re-parses only files whose content changed), placement and ownership are memoized per
rendered object, and a diff is reused when neither its desired nor its live object
changed (targets return the same live object for what they did not see change). Errors
have hard boundaries: an event subscriber or a plugin that raises never aborts a sync
halfway, the final inventory is always written, and ``run()`` survives anything one
iteration raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from gitops import hooks, syncoptions
from gitops import inventory as inv
from gitops.differs.base import Differ
from gitops.differs.ignore import respect_ignored, validate_rules
from gitops.errors import (
    AuthenticationError,
    ConflictError,
    EmptySourceError,
    GitopsError,
    InputError,
    SyncInterrupted,
    TargetError,
    TransientError,
    UnreachableError,
)
from gitops.hookrun import HookRunner, SyncState, masked
from gitops.hooks import HookRun
from gitops.manifests import PlaceMemo, crd_kinds, gc_paused, place
from gitops.model import (
    Action,
    Artifact,
    Change,
    Diff,
    DriftPolicy,
    Event,
    HealthStatus,
    Hook,
    HookPhase,
    IgnoreDifference,
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
from gitops.ordering import sort_changes, wave_of
from gitops.plugins import (
    get_plugin,
    open_differ,
    open_renderer,
    open_source,
    open_target,
    split_scheme,
)
from gitops.renderers.base import Renderer
from gitops.renderers.substitute import substitute
from gitops.sources.base import Source
from gitops.targets.base import Target

__all__ = ["EventHandler", "Reconciler", "default_name"]

log = logging.getLogger("gitops.engine")

EventHandler = Callable[[Event], None]

_UNREACHABLE = "not attempted: the target is unreachable"
_REFUSED = "not attempted: the target refused the credentials"
_INTERRUPTED = "not attempted: the sync was interrupted"

#: Where a wait for a resource's health ends.
_SETTLED = frozenset({HealthStatus.HEALTHY, HealthStatus.DEGRADED})
#: Hook phases whose runs are reported even when not attempted (SyncFail only when run).
_ALWAYS_REPORTED = (HookPhase.PRE_SYNC, HookPhase.SYNC, HookPhase.POST_SYNC)
_PHASE_ORDER = {phase: i for i, phase in enumerate(HookPhase)}
#: The event of a successful write: (action, of a hook?) -> reason.
_DONE_EVENTS = {
    (Action.CREATE, False): "Created", (Action.UPDATE, False): "Updated",
    (Action.DELETE, False): "Pruned", (Action.CREATE, True): "HookCreated",
    (Action.UPDATE, True): "HookCreated", (Action.DELETE, True): "HookDeleted",
}


class _Cancelled(KeyboardInterrupt):
    """``sync(cancel=...)`` was set: the sync ends on the path a Ctrl-C takes."""


def _phase(hook_run: HookRun | None) -> HookPhase | None:
    return None if hook_run is None else hook_run.phase


def default_name(source_identity: str) -> str:
    """A stable inventory name for a source: a readable slug and a short hash of it.

    ``/srv/config/apps/shop`` gives ``apps-shop-<8 hex>``; two sources never share
    a name by accident, and the same source always gets the same one.
    """
    digest = hashlib.sha256(source_identity.encode()).hexdigest()[:8]
    rest = re.sub(r"^[a-z0-9+.-]*:(//)?", "", source_identity.lower())
    segments = [re.sub(r"[^a-z0-9]+", "-", s).strip("-") for s in re.split(r"[/#?&=@:]", rest)]
    meaningful = [s.removesuffix("-git") for s in segments if s and s not in _NOISE][-2:]
    slug = "-".join(meaningful)[:50].strip("-") or "app"
    return f"{slug}-{digest}"


_NOISE = frozenset({"path", "ref", "semver", "tag"})


@dataclass
class _Memo:
    """What the last plan computed, reused by the next where its inputs are the same."""

    revision: str = ""
    artifact: Artifact | None = None
    rendered: tuple[Resource, ...] = ()
    placed: PlaceMemo = field(default_factory=dict)
    #: the last placement as a whole: (rendered, group-kinds' scopes, placed, owned)
    last_placed: tuple[tuple[Resource, ...], dict[tuple[str, str], bool | None],
                       tuple[Resource, ...], tuple[Resource, ...]] | None = None
    #: id(placed) -> (placed, as owned, declares a hook?)
    owned: dict[int, tuple[Resource, Resource, bool]] = field(default_factory=dict)
    #: how many resources of the last owned set declare a hook (Skip included)
    hooked: int = 0
    desired_keys: tuple[tuple[Resource, ...], frozenset[ResourceKey]] | None = None
    diffs: dict[ResourceKey, tuple[Resource, Resource, DriftPolicy, Diff]] = field(
        default_factory=dict
    )
    #: the owned set split into (desired, hooks, Skip keys), by the owned tuple
    split: tuple[tuple[Resource, ...], tuple[Resource, ...], tuple[Hook, ...],
                 tuple[ResourceKey, ...]] | None = None
    #: sync options the engine does not implement, by (desired, hooks) tuples
    unsupported: tuple[tuple[Resource, ...], tuple[Hook, ...],
                       tuple[tuple[ResourceKey, str], ...]] | None = None


class Reconciler(HookRunner):
    """Reconciles one source into one target.

    ``source`` and ``target`` are plugin objects or URLs (opened through the plugin
    registry and closed with the reconciler). Every option is an explicit keyword,
    validated by :class:`~gitops.model.ReconcilerOptions`:

    - ``name``: the inventory name (a DNS label); default: derived from the source
      (:func:`default_name`), so two applications on one target never prune each other;
    - ``prune``: delete owned objects the source no longer declares; ``allow_empty``:
      allow pruning everything when the source renders nothing;
    - ``adopt``: take over objects another inventory on the target owns (refused by
      default);
    - ``dry_run``: validate every change, write nothing;
    - ``retries``, ``retry_backoff``, ``retry_max_delay``: transient failures;
    - ``wait``, ``wait_timeout``, ``wait_interval``: health gating between waves (hooks
      are awaited whatever ``wait`` says, each wave for at most ``wait_timeout``);
    - ``ignore_differences``: Argo CD ``ignoreDifferences`` rules (fields that are not
      drift and that a sync leaves alone);
    - ``substitute``: Flux-style ``${VAR}`` values applied to the rendered objects;
    - ``render_options``: renderer settings passed in the render context.
    """

    def __init__(
        self,
        source: Source | str,
        target: Target | str,
        *,
        name: str | None = None,
        prune: bool = False,
        allow_empty: bool = False,
        adopt: bool = False,
        dry_run: bool = False,
        retries: int = 3,
        retry_backoff: float = 0.2,
        retry_max_delay: float = 10.0,
        wait: bool = False,
        wait_timeout: float = 300.0,
        wait_interval: float = 1.0,
        ignore_differences: Sequence[IgnoreDifference | Mapping[str, Any]] = (),
        substitute: Mapping[str, str] | None = None,
        render_options: Mapping[str, Any] | None = None,
        differ: Differ | None = None,
        renderer: Renderer | None = None,
        on_event: EventHandler | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._owned: list[Source | Target] = []
        self.source = self._own(open_source(source)) if isinstance(source, str) else source
        try:
            self.target = (
                self._own(_open_target(target, adopt=adopt)) if isinstance(target, str) else target
            )
            self.options = _options(
                name=name if name is not None else default_name(self.source_identity),
                prune=prune, allow_empty=allow_empty, adopt=adopt, dry_run=dry_run,
                retries=retries, retry_backoff=retry_backoff, retry_max_delay=retry_max_delay,
                wait=wait, wait_timeout=wait_timeout, wait_interval=wait_interval,
                ignore_differences=tuple(ignore_differences),
                substitute=dict(substitute or {}), render_options=dict(render_options or {}),
            )
        except BaseException:
            self.close()
            raise
        validate_rules(self.options.ignore_differences)
        self.differ = differ if differ is not None else open_differ("structural")
        self.renderer = renderer if renderer is not None else open_renderer("auto")
        self._handlers: list[EventHandler] = [on_event] if on_event else []
        self._nap = sleep
        self._sleep = self._sleep_unless_cancelled
        self._cancel: threading.Event | None = None
        self._memo = _Memo()

    # -- lifecycle ---------------------------------------------------------------

    def _own(self, obj: Any) -> Any:
        self._owned.append(obj)
        return obj

    @property
    def name(self) -> str:
        """The inventory name."""
        return self.options.name

    @property
    def source_identity(self) -> str:
        """What identifies the source across revisions (its URL without the ref)."""
        return self.source.identity()

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
        """Call ``handler`` with every :class:`~gitops.model.Event` from now on.

        A handler that raises is logged and skipped; it never stops a sync.
        """
        self._handlers.append(handler)

    def _emit(
        self, reason: str, message: str, *, key: ResourceKey | None = None,
        revision: str = "", warning: bool = False,
    ) -> None:
        event = Event(reason, message, key, revision, warning)
        log.log(logging.WARNING if warning else logging.INFO, "%s: %s", reason, message)
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # a subscriber's bug must never abort a sync halfway
                log.exception("event handler %r failed on %s; continuing", handler, reason)

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
        artifact, rendered = self._render(revision)
        if not rendered and self.options.prune and not self.options.allow_empty:
            raise EmptySourceError(
                f"{artifact.url}: the source renders no resources at {revision}; refusing to "
                "prune everything (pass allow_empty=True / --allow-empty to allow it)"
            )
        self.target.check(rendered)
        memo = self._memo
        desired, hook_list, skipped = self._split(self._placed_and_owned(rendered))
        policy = self._policy()
        owned = self.target.read_inventory(self.name)
        current = owned if owned is not None else inv.EMPTY
        identity = self.source_identity
        if current.source and current.source != identity:
            self._emit("InventoryTakenOver", f"inventory {self.name!r} on {self.target.url} "
                       f"was written by source {current.source}; {identity} now owns it",
                       revision=revision, warning=True)
        desired_keys = self._keys_of(desired)
        wanted = desired_keys | current.keys
        if hook_list:  # whether named hooks exist: BeforeHookCreation deletes them first
            wanted = wanted.union(h.key for h in hook_list if not h.generate_name)
        keys = list(wanted)
        live = self.target.live(keys)
        # After live(): a target may answer owners() from what that read saw.
        claimed = self.target.owners(keys, self.name) if keys else {}
        self._refuse_claimed(desired, claimed)

        changes: list[Change] = []
        unchanged = diffed = 0
        previous, diffs = memo.diffs, {}
        for res in desired:
            was = live.get(res.key)
            if was is None:
                changes.append(Change(Action.CREATE, res.key, res.api_version, res, None, None,
                                      wave_of(res)))
                continue
            known = previous.get(res.key)
            if known is not None and known[0] is res and known[1] is was and known[2] == policy:
                diff = known[3]
            else:
                diff = self.differ.diff(res, was, policy)
                diffed += 1
            diffs[res.key] = (res, was, policy, diff)
            if diff.changed:
                # Fields the ignore rules name are applied as they are live (Argo CD's
                # RespectIgnoreDifferences): an autoscaler may own spec.replicas.
                applied = respect_ignored(res, was, policy) if policy.ignore else res
                changes.append(Change(Action.UPDATE, res.key, res.api_version, applied, was,
                                      diff, wave_of(res)))
            else:
                unchanged += 1
        memo.diffs = diffs

        extraneous: list[ResourceKey] = []
        orphaned: list[ResourceKey] = []
        # Hooks and Skip resources are never pruned: a hook's key leaves the inventory, a
        # Skip resource stays owned (see _write_final_inventory).
        untouched = {h.key for h in hook_list}.union(skipped) if hook_list or skipped else ()
        for key in sorted(current.keys - desired_keys):
            was = live.get(key)
            if was is None or key in untouched:
                continue  # already gone: dropped from the inventory on the next write
            if not self.options.prune:
                extraneous.append(key)
            elif inv.prune_disabled(was) or key in claimed:
                orphaned.append(key)  # kept: asked to, or another inventory lists it
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
            diffed=diffed,
            live=live,
            policy=policy,
            hooks=hook_list,
            skipped=skipped,
        )
        self._emit(
            "Planned",
            f"{len(plan.changes)} changes, {unchanged} unchanged at {revision}",
            revision=revision,
        )
        for change in plan.changes:
            if change.action is Action.UPDATE:
                self._emit("DriftDetected", f"{change.key} differs from {revision}",
                           key=change.key, revision=revision)
        return plan

    def _policy(self) -> DriftPolicy:
        policy = self.target.drift_policy()
        if self.options.ignore_differences:
            policy = replace(policy, ignore=policy.ignore + self.options.ignore_differences)
        return policy

    def _render(self, revision: str) -> tuple[Artifact, tuple[Resource, ...]]:
        """Fetch and render ``revision``, reusing the last result for an unchanged revision.

        Rendering is a pure function of the artifact (and this reconciler's constant
        render context), so the revision is a sound cache key; the target's scope is
        applied afterwards, uncached.
        """
        memo = self._memo
        if memo.artifact is not None and memo.revision == revision:
            return memo.artifact, memo.rendered
        artifact = self.source.fetch(revision)
        context = RenderContext(
            revision=revision,
            tree=artifact.tree,
            variables=self.options.substitute,
            options=self.options.render_options,
        )
        rendered = tuple(self.renderer.render(artifact.path, context))
        if self.options.substitute and not self.renderer.substitutes:
            rendered = tuple(substitute(rendered, self.options.substitute))
        for res in rendered:
            wave_of(res)  # validate sync-wave annotations before anything is planned
        memo.revision, memo.artifact, memo.rendered = revision, artifact, rendered
        return artifact, rendered

    def _keys_of(self, desired: tuple[Resource, ...]) -> frozenset[ResourceKey]:
        """The keys of the desired set (memoized with it)."""
        known = self._memo.desired_keys
        if known is not None and known[0] is desired:
            return known[1]
        keys = frozenset(r.key for r in desired)
        self._memo.desired_keys = (desired, keys)
        return keys

    def _placed_and_owned(self, rendered: tuple[Resource, ...]) -> tuple[Resource, ...]:
        """Place the rendered set on this target and own it; reused while nothing changed.

        The target is asked for each kind's scope every time (it can learn a kind between
        two plans); only when every answer and the rendered set are the same is the last
        result reused as a whole.
        """
        memo = self._memo
        last = memo.last_placed
        same_render = last is not None and last[0] is rendered
        kinds = last[1].keys() if last is not None and same_render else {
            (r.key.group, r.key.kind) for r in rendered
        }
        scopes = {gk: self.target.is_namespaced(*gk) for gk in kinds}
        if last is not None and same_render and last[1] == scopes:
            return last[3]
        placed = tuple(place(rendered, is_namespaced=self.target.is_namespaced,
                             memo=memo.placed))
        owned = self._owned_as(placed)
        memo.last_placed = (rendered, scopes, placed, owned)
        return owned

    def _owned_as(self, placed: Sequence[Resource]) -> tuple[Resource, ...]:
        """Each placed resource as this inventory stores it on the target (memoized).

        Hooks and Skip resources are not the inventory's: they stay as placed.
        """
        before, after = self._memo.owned, {}
        owned: list[Resource] = []
        hooked = 0
        for res in placed:
            known = before.get(id(res))
            if known is not None and known[0] is res:
                mine, is_hook = known[1], known[2]
            else:
                is_hook = hooks.declares_hook(res.annotations)
                mine = res if is_hook else self.target.own(res, self.name)
            hooked += is_hook
            after[id(res)] = (res, mine, is_hook)
            owned.append(mine)
        self._memo.owned = after
        self._memo.hooked = hooked
        return tuple(owned)

    def _split(
        self, owned: tuple[Resource, ...]
    ) -> tuple[tuple[Resource, ...], tuple[Hook, ...], tuple[ResourceKey, ...]]:
        """Desired state, hooks and Skip keys of the owned set (memoized with it).

        Raises ManifestError for a hook annotation that is wrong.
        """
        known = self._memo.split
        if known is not None and known[0] is owned:
            return known[1], known[2], known[3]
        if self._memo.hooked:  # (counted while owning: no hook, nothing to look at)
            desired, hook_list, skipped = hooks.split(owned)
        else:  # the same tuple: what is memoized by it stays valid
            desired, hook_list, skipped = owned, (), ()
        self._memo.split = (owned, desired, hook_list, skipped)
        return desired, hook_list, skipped

    def _refuse_claimed(self, desired: Iterable[Resource], claimed: Mapping[ResourceKey, str]) -> None:
        """ConflictError for desired objects another inventory owns, unless adopting."""
        if self.options.adopt or self.target.adopts or not claimed:
            return
        taken = [(r.key, claimed[r.key]) for r in desired if r.key in claimed]
        if not taken:
            return
        shown = ", ".join(f"{key} (inventory {owner!r})" for key, owner in taken[:3])
        more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
        raise ConflictError(
            taken[0][0],
            f"owned by another inventory on {self.target.url}: {shown}{more}; not taken over "
            "(pass adopt=True / --adopt to take them, or --name to reuse that inventory)",
            url=self.target.url,
        )

    # -- sync --------------------------------------------------------------------

    def sync(
        self, plan: Plan | None = None, *, cancel: threading.Event | None = None
    ) -> SyncResult:
        """Plan (unless a plan is given) and apply it; report each resource's outcome.

        Holds the target's lock (:meth:`~gitops.targets.base.Target.lock`) from reading
        the inventory to writing the final one. Nothing is written if any change (or
        hook) fails validation. The inventory is widened before the first write and
        narrowed to the new set after success; it is written whatever happens in between.
        Changes that fail are reported per resource; later waves and pruning are skipped,
        and after the target becomes unreachable nothing more is attempted. Ctrl-C raises
        :class:`~gitops.errors.SyncInterrupted` carrying the partial result; so does setting
        ``cancel`` (from another thread), checked before each write and during each wait:
        the write in flight finishes, the inventory is written, nothing more is attempted.

        A plan with changes runs its hooks (:mod:`gitops.hooks`): ``PreSync`` first (one
        that fails stops the sync: nothing else is applied), ``Sync`` hooks in their
        waves, ``PostSync`` once everything applied is healthy, ``SyncFail`` after any
        failure; each is awaited until complete. A plan without changes runs none.
        Sync options the engine does not implement are reported as warning events.
        """
        started = datetime.now(UTC)
        if plan is not None:
            self._check_plan_is_ours(plan)  # before the lock, which may create the target
        lock = (
            contextlib.nullcontext() if self.options.dry_run else self.target.lock(self.name)
        )
        with lock:
            if plan is None:
                plan = self.plan()
            else:
                self._check_given_plan(plan)
            self._report_unsupported_options(plan)
            run = SyncState()
            self._cancel = cancel
            try:
                if self.options.dry_run:
                    self._dry_run(plan, run)
                else:
                    self._execute(plan, run)
            except KeyboardInterrupt:
                result = self._result(plan, run, started, interrupted=True)
                done = sum(r.outcome is Outcome.SUCCEEDED and r.hook is None
                           for r in result.results)
                self._emit("SyncInterrupted", f"{plan.target} at {plan.revision}: interrupted "
                           f"after {done} of {len(plan.changes)} changes",
                           revision=plan.revision, warning=True)
                raise SyncInterrupted(result) from None
            finally:
                self._cancel = None
        result = self._result(plan, run, started)
        if result.succeeded:
            self._emit("SyncSucceeded", f"{plan.target} at {plan.revision}: "
                       f"{len(plan.changes)} changes", revision=plan.revision)
        else:
            failed = sum(r.hook is None for r in result.failed)
            why = result.message or f"{failed} of {len(plan.changes)} changes failed"
            self._emit("SyncFailed", f"{plan.target} at {plan.revision}: {why}",
                       revision=plan.revision, warning=True)
        return result

    def _check_plan_is_ours(self, plan: Plan) -> None:
        if plan.name != self.name:
            raise InputError(f"plan is for inventory {plan.name!r}, not {self.name!r}")
        if plan.target != self.target.url:
            raise InputError(f"plan is for target {plan.target}, not {self.target.url}")

    def _check_given_plan(self, plan: Plan) -> None:
        """Under the lock: is the plan still true of the target?"""
        if self.options.dry_run:
            return
        now = self.target.read_inventory(self.name)
        if not _same_inventory(plan.inventory, now):
            raise ConflictError(
                plan.name, f"the inventory on {self.target.url} changed since this plan was "
                "made (another sync ran); plan again", url=self.target.url,
            )
        # Another inventory may have claimed objects since the plan (a sync under another
        # name ran in between): never take them over, nor prune them, on a stale answer.
        keys = [r.key for r in plan.desired] + [
            c.key for c in plan.changes if c.action is Action.DELETE
        ]
        claimed = self.target.owners(keys, self.name) if keys else {}
        self._refuse_claimed(plan.desired, claimed)
        pruned = [c.key for c in plan.changes if c.action is Action.DELETE and c.key in claimed]
        if pruned:
            raise ConflictError(
                pruned[0], f"now listed by inventory {claimed[pruned[0]]!r} on "
                f"{self.target.url} since this plan was made; not pruned; plan again",
                url=self.target.url,
            )

    def _report_unsupported_options(self, plan: Plan) -> None:
        """One warning event per resource and sync option the engine does not implement."""
        memo = self._memo.unsupported
        if memo is not None and memo[0] is plan.desired and memo[1] is plan.hooks:
            found = memo[2]
        else:
            declared = (*plan.desired, *(h.resource for h in plan.hooks))
            found = tuple((res.key, option) for res in declared if res.annotations
                          for option in syncoptions.unsupported(res))
            self._memo.unsupported = (plan.desired, plan.hooks, found)
        for key, option in found:
            self._emit("SyncOptionUnsupported", f"{key}: sync option {option!r} is not "
                       "supported and was ignored (supported: Prune=false, Delete=false, "
                       "Validate=false)", key=key, revision=plan.revision, warning=True)

    def _result(
        self, plan: Plan, run: SyncState, started: datetime, *, interrupted: bool = False
    ) -> SyncResult:
        """The result, with every change of the plan accounted for exactly once, hook runs
        (PreSync first, the others after the changes) included."""
        if interrupted:
            if run.in_flight is not None:
                abandoned = ResourceResult(
                    run.in_flight, Outcome.FAILED,
                    "interrupted while being applied: it may or may not have been applied",
                    hook=run.in_flight_hook,
                )
                (run.results if run.in_flight_hook is None else run.hook_results).append(abandoned)
            for i in run.running_hooks:
                run.hook_results[i] = replace(run.hook_results[i], outcome=Outcome.FAILED,
                                              message="interrupted before the hook completed")
        done = {id(r.change) for r in run.results}
        why = _INTERRUPTED if interrupted else run.stopped or "not attempted"
        results = list(run.results) + [
            ResourceResult(c, Outcome.SKIPPED, why) for c in plan.changes if id(c) not in done
        ]
        order = {id(c): i for i, c in enumerate(plan.changes)}
        results.sort(key=lambda r: order.get(id(r.change), len(order)))
        ran = {id(r.change) for r in run.hook_results}
        hook_results = run.hook_results + [
            ResourceResult(r.change, Outcome.SKIPPED, why, hook=phase)
            for phase in _ALWAYS_REPORTED for r in run.hook_runs.get(phase, ())
            if id(r.change) not in ran
        ]
        hook_results.sort(key=lambda r: _PHASE_ORDER[r.hook] if r.hook else 0)
        before = [r for r in hook_results if r.hook is HookPhase.PRE_SYNC]
        after = hook_results[len(before):]
        return SyncResult(plan, (*before, *results, *after), self.options.dry_run, started,
                          datetime.now(UTC), run.message)

    def _checks(
        self, plan: Plan, run: SyncState, phases: Iterable[HookPhase]
    ) -> Iterator[tuple[Change, HookRun | None]]:
        """The plan's changes, then the runs of hooks in ``phases``: what a dry run checks."""
        for change in plan.changes:
            yield change, None
        for phase in phases:
            for hook_run in run.hook_runs.get(phase, ()):
                yield hook_run.change, hook_run

    def _not_validated(
        self, change: Change, hook_run: HookRun | None, run: SyncState,
        waits: Callable[[Change], bool],
    ) -> str:
        """Why a dry run cannot check this apply before the first write, or ""."""
        if waits(change):
            return "validated when applied, after the Namespace or CRD this sync creates"
        if change.desired is not None and syncoptions.validation_disabled(change.desired):
            return "not validated (sync option Validate=false)"
        if hook_run is not None and hook_run.recreated and hook_run.key in run.hooks_present:
            return "validated when re-created, after its previous instance is deleted"
        return ""

    def _dry_run(self, plan: Plan, run: SyncState) -> None:
        self._prepare_hooks(plan, run)
        checks = list(self._checks(plan, run, _ALWAYS_REPORTED))
        if not self.target.supports_dry_run:
            for change, hook_run in checks:
                self._record(run, ResourceResult(change, Outcome.SKIPPED, "dry run",
                                                 hook=_phase(hook_run)))
            return
        waits = self._waits_for_prerequisite(plan)
        for change, hook_run in checks:
            if run.stopped:
                break
            why = self._not_validated(change, hook_run, run, waits)
            self._record(run, ResourceResult(change, Outcome.SKIPPED, f"dry run: {why}",
                                             hook=_phase(hook_run)) if why
                         else self._attempt(change, run, dry_run=True, hook=_phase(hook_run)))

    @staticmethod
    def _record(run: SyncState, result: ResourceResult) -> None:
        (run.results if result.hook is None else run.hook_results).append(result)

    def _execute(self, plan: Plan, run: SyncState) -> None:
        self._prepare_hooks(plan, run)
        if self._validate(plan, run):
            return
        first = self._needed_by_presync(plan, run)
        if not first:  # a failed PreSync hook leaves the target as it was, inventory included
            why = self._run_hooks(HookPhase.PRE_SYNC, run)
            if why:
                self._skip_the_rest(plan, run, why)
                self._run_hooks(HookPhase.SYNC_FAIL, run)
                return
        old = plan.inventory if plan.inventory is not None else inv.EMPTY
        identity = self.source_identity
        if plan.changes:
            widened = inv.union(old, inv.from_resources(plan.desired, source=identity))
            self._write_inventory(plan.inventory, widened)
        else:  # nothing will be written: nothing to widen before
            widened = old
        try:
            why = ""
            if first:
                why = self._apply_wave(first, run) or self._run_hooks(HookPhase.PRE_SYNC, run)
            if why:
                self._skip_the_rest(plan, run, why)
            else:
                self._apply_waves(plan, run, {id(c) for c in first})
                if (run.hook_runs.get(HookPhase.POST_SYNC) and not self.options.wait
                        and not self._failed_so_far(plan, run)):
                    self._wait_all_healthy(run)  # PostSync runs once all applied is healthy
        finally:
            self._write_final_inventory(plan, run, old, widened, identity)
        if not self._failed_so_far(plan, run):
            self._run_hooks(HookPhase.POST_SYNC, run)
        else:
            self._skip_hooks(run, (HookPhase.POST_SYNC,),
                             run.stopped or "not attempted: the sync failed")
        if self._failed_so_far(plan, run):  # a PostSync hook that failed counts too
            self._run_hooks(HookPhase.SYNC_FAIL, run)

    def _skip_the_rest(self, plan: Plan, run: SyncState, why: str) -> None:
        """After PreSync failed: no change (but those already made) nor hook is attempted."""
        done = {id(r.change) for r in run.results}
        run.results.extend(ResourceResult(c, Outcome.SKIPPED, why)
                           for c in plan.changes if id(c) not in done)
        self._skip_hooks(run, (HookPhase.SYNC, HookPhase.POST_SYNC), why)

    @staticmethod
    def _failed_so_far(plan: Plan, run: SyncState) -> bool:
        return bool(
            run.stopped
            or len(run.results) < len(plan.changes)
            or any(r.outcome is not Outcome.SUCCEEDED for r in run.results)
            or any(r.outcome is Outcome.FAILED for r in run.hook_results)
        )

    def _apply_wave(self, wave: Sequence[Change], run: SyncState) -> str:
        """Apply a wave of changes (awaiting their health with ``wait``); returns why what
        follows is not attempted, or ""."""
        first = len(run.results)
        for change in wave:  # recorded one by one: a Ctrl-C keeps what was done
            if run.stopped:
                run.results.append(ResourceResult(change, Outcome.SKIPPED, run.stopped))
            else:
                run.results.append(self._attempt(change, run))
        outcomes = run.results[first:]
        if self.options.wait and self.target.supports_health and not run.stopped:
            outcomes = self._wait_healthy(outcomes)
            run.results[first:] = outcomes
        failed = [r for r in outcomes if r.outcome is not Outcome.SUCCEEDED]
        if run.stopped:
            return run.stopped
        if failed:
            return f"not attempted: {failed[0].change.key} failed in an earlier wave"
        return ""

    def _apply_waves(self, plan: Plan, run: SyncState, done: Container[int]) -> None:
        """The Sync phase: the waves of changes (but those ``done``), Sync hooks in theirs."""
        blocked = ""
        sync_hooks = run.hook_runs.get(HookPhase.SYNC, [])
        for wave, hook_wave in hooks.sync_steps(plan.changes, sync_hooks):
            wave = [c for c in wave if id(c) not in done]
            if blocked:
                run.results.extend(ResourceResult(c, Outcome.SKIPPED, blocked) for c in wave)
                self._skip_runs(run, hook_wave, blocked)
                continue
            # The wave's hooks start once its changes are applied (and healthy, with wait).
            blocked = self._apply_wave(wave, run)
            if blocked:
                self._skip_runs(run, hook_wave, blocked)
                continue
            hook_failed = self._finish_hooks(self._start_hooks(hook_wave, run), run)
            if hook_failed:
                blocked = run.stopped or f"not attempted: {hook_failed} in an earlier wave"

    def _write_final_inventory(
        self, plan: Plan, run: SyncState, old: Inventory, widened: Inventory, identity: str
    ) -> None:
        """Narrow the inventory to what the target now holds; always attempted."""
        complete = len(run.results) == len(plan.changes) and not run.stopped
        succeeded = complete and all(r.outcome is Outcome.SUCCEEDED for r in run.results)
        if not complete:  # interrupted or target gone: keep owning all that may exist
            final = widened
        else:
            kept = {
                r.change.key: r.change.api_version
                for r in run.results
                if r.change.action is Action.DELETE and r.outcome is not Outcome.SUCCEEDED
            }
            kept.update((k, old.entries[k]) for k in plan.extraneous)
            kept.update((k, old.entries[k]) for k in plan.skipped if k in old.entries)
            final = inv.with_entries(
                inv.from_resources(plan.desired, plan.revision if succeeded else old.revision,
                                   identity),
                kept,
            )
        try:
            self._write_inventory(widened, final)
        except Exception as exc:
            message = f"{self.target.url}: the inventory {self.name!r} could not be written: {exc}"
            self._emit("InventoryWriteFailed", message, revision=plan.revision, warning=True)
            if complete:
                raise

    def _validate(self, plan: Plan, run: SyncState) -> bool:
        """Dry-run every apply and hook first (where the target can); on failure write nothing.

        Returns True (results recorded) when validation failed or the target went away.
        """
        if not self.target.supports_dry_run:
            return False
        waits = self._waits_for_prerequisite(plan)
        failures: list[ResourceResult] = []
        for change, hook_run in self._checks(plan, run, HookPhase):
            if change.action is Action.DELETE or self._not_validated(change, hook_run, run, waits):
                continue
            result = self._attempt(change, run, dry_run=True, hook=_phase(hook_run))
            if run.stopped:
                self._record(run, result)
                return True
            if result.outcome is Outcome.FAILED:
                failures.append(result)
        if not failures:
            return False
        why = f"not applied: validation of {failures[0].change.key} failed"
        failed = {id(r.change): r for r in failures}
        for r in failures:
            self._emit("ValidationFailed", r.message, key=r.change.key, warning=True)
        run.results.extend(
            failed.get(id(c)) or ResourceResult(c, Outcome.SKIPPED, why) for c in plan.changes
        )
        run.hook_results.extend(r for r in failures if r.hook is not None)
        for phase in _ALWAYS_REPORTED:
            self._skip_runs(run, (r for r in run.hook_runs.get(phase, ())
                                  if id(r.change) not in failed), why)
        return True

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

    def _attempt(
        self, change: Change, run: SyncState, *, dry_run: bool = False, hook: HookPhase | None = None
    ) -> ResourceResult:
        """Apply or delete one resource, retrying transient failures with backoff.

        While it runs, ``run.in_flight`` names it: a Ctrl-C leaves it there, so the
        result can say the change was abandoned mid-way. ``hook`` is the phase of the
        hook run it belongs to, if any (its result and events say so).
        """
        if self._cancel is not None and self._cancel.is_set():
            raise _Cancelled
        run.in_flight = None if dry_run else change
        run.in_flight_hook = hook
        result = self._attempt_with_retries(change, run, dry_run=dry_run, hook=hook)
        run.in_flight = None
        return result

    def _attempt_with_retries(
        self, change: Change, run: SyncState, *, dry_run: bool, hook: HookPhase | None
    ) -> ResourceResult:
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
            except UnreachableError as exc:
                run.stopped = _UNREACHABLE
                self._emit("TargetUnreachable", masked(change, str(exc)), key=change.key,
                           warning=True)
                return self._failed(change, self._message(exc), attempts, hook)
            except AuthenticationError as exc:
                run.stopped = _REFUSED
                return self._failed(change, self._message(exc), attempts, hook)
            except TransientError as exc:
                if attempts > self.options.retries:
                    return self._failed(change, self._message(exc), attempts, hook)
                retry_after = exc.retry_after
                wait = float(retry_after) if retry_after is not None else delay
                self._sleep(min(wait, self.options.retry_max_delay))
                delay = min(delay * 2, self.options.retry_max_delay)
                continue
            except GitopsError as exc:
                return self._failed(change, self._message(exc), attempts, hook)
            except Exception as exc:  # a plugin bug must not abort the other resources
                message = masked(change, f"{type(exc).__name__}: {exc}")
                # No traceback: its text may quote the object (a Secret's values).
                log.error("unexpected error from %s on %s: %s", self.target.url, change.key,
                          message)
                return self._failed(change, message, attempts, hook)
            if not dry_run:
                reason = _DONE_EVENTS[change.action, hook is not None]
                what = str(change.key) if hook is None else f"{hook.value} hook {change.key}"
                self._emit(reason, what, key=change.key)
            return ResourceResult(change, Outcome.SUCCEEDED, attempts=attempts, hook=hook)

    def _sleep_unless_cancelled(self, seconds: float) -> None:
        """Sleep (retry backoff, health polls); a ``cancel`` set meanwhile ends the sync."""
        cancel = self._cancel
        if cancel is None:
            self._nap(seconds)
            return
        if self._nap is time.sleep:
            cancel.wait(seconds)
        else:  # an injected clock (tests): sleep on it, then look
            self._nap(seconds)
        if cancel.is_set():
            raise _Cancelled

    def _message(self, exc: GitopsError) -> str:
        if isinstance(exc, TargetError) and not exc.url:
            exc.url = self.target.url
        return str(exc)

    def _failed(
        self, change: Change, message: str, attempts: int, hook: HookPhase | None = None
    ) -> ResourceResult:
        message = masked(change, message)  # a target may quote the object it refused
        reason = "ApplyFailed" if hook is None else (
            "HookDeleteFailed" if change.action is Action.DELETE else "HookFailed"
        )
        self._emit(reason, message, key=change.key, warning=True)
        return ResourceResult(change, Outcome.FAILED, message, attempts, hook=hook)

    def _wait_healthy(self, outcomes: list[ResourceResult]) -> list[ResourceResult]:
        """Poll the health of a wave's applied resources until Healthy, Degraded or timeout."""
        verdicts = self._poll_health({
            i: r.change.desired for i, r in enumerate(outcomes)
            if r.outcome is Outcome.SUCCEEDED and r.change.desired is not None
        }, _SETTLED)
        final = list(outcomes)
        for i, verdict in verdicts.items():
            r = outcomes[i]
            if not isinstance(verdict, HealthStatus):
                final[i] = ResourceResult(r.change, Outcome.FAILED, verdict, r.attempts)
            elif verdict is HealthStatus.HEALTHY:
                final[i] = ResourceResult(r.change, r.outcome, r.message, r.attempts, verdict)
            elif verdict is HealthStatus.DEGRADED:
                final[i] = ResourceResult(r.change, Outcome.FAILED, "resource is Degraded",
                                          r.attempts, verdict)
            else:
                final[i] = ResourceResult(
                    r.change, Outcome.FAILED,
                    f"not healthy after {self.options.wait_timeout:g}s", r.attempts, verdict,
                )
        return final

    def _wait_all_healthy(self, run: SyncState) -> None:
        """Gate on the health of everything applied (before PostSync hooks, without ``wait``)."""
        if not self.target.supports_health:
            return
        applied = [i for i, r in enumerate(run.results) if r.change.action is not Action.DELETE]
        outcomes = self._wait_healthy([run.results[i] for i in applied])
        for i, result in zip(applied, outcomes, strict=True):
            run.results[i] = result

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

        Whatever one iteration raises (a plugin bug included) is reported as a
        ``ReconcileError`` event and the loop goes on; it ends only when ``stop`` is
        set, after ``iterations``, or on Ctrl-C (:class:`~gitops.errors.SyncInterrupted`
        or ``KeyboardInterrupt`` propagates). With a target that ``supports_watch``,
        drift it reports starts the next sync at once, after a ``DriftDetected`` event.
        """
        stop = stop or threading.Event()
        drift = threading.Event()
        unsubscribe = self._watch_drift(drift.set)
        count = 0
        try:
            while not stop.is_set() and (iterations is None or count < iterations):
                count += 1
                drift.clear()
                for result in self._one_iteration():
                    if on_result is not None:
                        try:
                            on_result(result)
                        except Exception:
                            log.exception("on_result callback failed; continuing")
                if iterations is not None and count >= iterations:
                    break
                if unsubscribe is None:
                    stop.wait(interval)
                elif self._pause(stop, drift, interval):
                    self._emit("DriftDetected", f"{self.target.url}: an owned object changed")
        finally:
            if unsubscribe is not None:
                with contextlib.suppress(Exception):
                    unsubscribe()

    def _one_iteration(self) -> Iterator[SyncResult]:
        try:
            result = self.sync()
        except Exception as exc:
            self._report_iteration_error(exc)
            return
        yield result

    def _report_iteration_error(self, exc: Exception) -> None:
        """Report what one iteration of a reconcile loop raised: a ``ReconcileError`` event.

        For loops that drive :meth:`sync` themselves (:mod:`gitops.aio`) as :meth:`run` does.
        """
        if not isinstance(exc, GitopsError):
            log.exception("reconcile of %s failed unexpectedly", self.name, exc_info=exc)
        self._emit("ReconcileError", f"{type(exc).__name__}: {exc}"
                   if not isinstance(exc, GitopsError) else str(exc), warning=True)

    def _watch_drift(self, on_drift: Callable[[], None]) -> Callable[[], None] | None:
        """Subscribe to the target's drift events (``supports_watch``); None if it has none."""
        if not self.target.supports_watch:
            return None
        try:
            return self.target.watch(lambda _event: on_drift())
        except Exception as exc:
            self._emit("WatchFailed", f"{self.target.url}: cannot watch for drift: {exc}",
                       warning=True)
            return None

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


def _open_target(url: str, *, adopt: bool) -> Target:
    """Open a target URL; adopting, open it adopting too where it enforces ownership itself."""
    options = getattr(get_plugin("target", split_scheme(url)), "Options", None)
    if adopt and options is not None and "adopt" in options.model_fields:
        return open_target(url, adopt=True)
    return open_target(url)


def _options(**values: Any) -> ReconcilerOptions:
    try:
        return ReconcilerOptions(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"invalid reconciler options: {problems}") from None


def _same_inventory(a: Inventory | None, b: Inventory | None) -> bool:
    if a is None or b is None:
        return a is b
    return inv.same(a, b)
