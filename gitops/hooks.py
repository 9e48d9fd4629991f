"""Resource hooks: Argo CD's ``argocd.argoproj.io/hook`` annotations, read and ordered.

A resource annotated ``argocd.argoproj.io/hook`` (or ``gitops.dev/hook``, which must
agree where both are set) with a comma-separated list of ``PreSync``, ``Sync``,
``PostSync``, ``SyncFail`` is a hook: the engine runs it in those phases of a sync that
applies changes, instead of keeping it as desired state. ``Skip`` (alone) marks a
resource the engine never applies. ``argocd.argoproj.io/hook-delete-policy`` (or
``gitops.dev/hook-delete-policy``) lists ``HookSucceeded``, ``HookFailed``,
``BeforeHookCreation``; the default is ``BeforeHookCreation``, as in Argo CD.

This module parses and orders; the engine runs. Pure functions (but for the random
suffix of a generated name): no I/O. Unknown values are a
:class:`~gitops.errors.ManifestError` naming the resource's file, never ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gitops.errors import ManifestError
from gitops.model import (
    Action,
    Change,
    HealthStatus,
    Hook,
    HookDeletePolicy,
    HookPhase,
    Resource,
    ResourceKey,
)
from gitops.ordering import apply_order, group_waves, wave_of

__all__ = [
    "DELETE_POLICY_ANNOTATIONS",
    "HOOK_ANNOTATIONS",
    "SKIP",
    "HookRun",
    "completion",
    "declares_hook",
    "generated_name",
    "hook_of",
    "phase_runs",
    "split",
    "sync_steps",
    "waves",
]

#: The hook annotation under our prefix and Argo CD's.
HOOK_ANNOTATIONS = ("gitops.dev/hook", "argocd.argoproj.io/hook")
#: The delete-policy annotation under our prefix and Argo CD's.
DELETE_POLICY_ANNOTATIONS = ("gitops.dev/hook-delete-policy", "argocd.argoproj.io/hook-delete-policy")
_OURS, _ARGO_CD = HOOK_ANNOTATIONS
#: The hook value that marks a resource the engine never applies.
SKIP = "Skip"

_PHASES = {p.value: p for p in HookPhase}
_POLICIES = {p.value: p for p in HookDeletePolicy}
_DEFAULT_POLICIES = frozenset({HookDeletePolicy.BEFORE_HOOK_CREATION})
#: Kubernetes' alphabet for generated names (no vowels: no words by accident).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 5
_MAX_NAME = 63


def declares_hook(annotations: Mapping[str, str]) -> bool:
    """Whether the annotations name a hook (``Skip`` included); does not validate."""
    return bool(annotations) and (_OURS in annotations or _ARGO_CD in annotations)


def _error(resource: Resource, message: str) -> ManifestError:
    return ManifestError(resource.origin or str(resource.key), message)


def _annotation(resource: Resource, names: Sequence[str]) -> tuple[str, list[str]] | None:
    """(annotation, its comma-separated values) for ``names``; the two spellings must agree."""
    found = [(n, str(resource.annotations[n])) for n in names if n in resource.annotations]
    if not found:
        return None
    parsed = [(n, [v.strip() for v in value.split(",") if v.strip()]) for n, value in found]
    if len(parsed) == 2 and set(parsed[0][1]) != set(parsed[1][1]):
        raise _error(resource, f"annotations {parsed[0][0]} ({found[0][1]!r}) and "
                     f"{parsed[1][0]} ({found[1][1]!r}) disagree; keep one")
    name, values = parsed[0]
    if not values:
        raise _error(resource, f"annotation {name} is empty")
    return name, values


def _phases(resource: Resource, name: str, values: list[str]) -> tuple[HookPhase, ...] | None:
    """The phases, or None for ``Skip``."""
    if SKIP in values:
        if len(set(values)) > 1:
            raise _error(resource, f"annotation {name}: {SKIP} cannot be combined with "
                         f"other hooks ({', '.join(values)})")
        return None
    unknown = [v for v in values if v not in _PHASES]
    if unknown:
        raise _error(resource, f"annotation {name}: unknown hook {unknown[0]!r} "
                     f"(expected {', '.join([*_PHASES, SKIP])})")
    return tuple(dict.fromkeys(_PHASES[v] for v in values))


def _delete_policies(resource: Resource) -> frozenset[HookDeletePolicy]:
    found = _annotation(resource, DELETE_POLICY_ANNOTATIONS)
    if found is None:
        return _DEFAULT_POLICIES
    name, values = found
    unknown = [v for v in values if v not in _POLICIES]
    if unknown:
        raise _error(resource, f"annotation {name}: unknown delete policy {unknown[0]!r} "
                     f"(expected {', '.join(_POLICIES)})")
    return frozenset(_POLICIES[v] for v in values)


def hook_of(resource: Resource) -> Hook | str | None:
    """The :class:`~gitops.model.Hook` a resource declares, :data:`SKIP`, or None.

    Raises :class:`~gitops.errors.ManifestError` for an unknown hook or delete policy,
    ``Skip`` combined with hooks, or the two spellings of an annotation disagreeing.
    """
    if not declares_hook(resource.annotations):
        return None
    found = _annotation(resource, HOOK_ANNOTATIONS)
    assert found is not None
    phases = _phases(resource, *found)
    if phases is None:
        return SKIP
    metadata = resource.metadata
    generate = "" if metadata.get("name") else str(metadata.get("generateName") or "")
    return Hook(resource, phases, _delete_policies(resource), wave_of(resource), generate)


def split(
    resources: Iterable[Resource],
) -> tuple[tuple[Resource, ...], tuple[Hook, ...], tuple[ResourceKey, ...]]:
    """Separate desired state from hooks and ``Skip`` resources (their keys), in order."""
    desired: list[Resource] = []
    hooks: list[Hook] = []
    skipped: list[ResourceKey] = []
    for res in resources:
        found = hook_of(res) if res.annotations else None
        if found is None:
            desired.append(res)
        elif isinstance(found, Hook):
            hooks.append(found)
        else:
            skipped.append(res.key)
    return tuple(desired), tuple(hooks), tuple(skipped)


def generated_name(prefix: str) -> str:
    """``prefix`` plus 5 random characters, as a Kubernetes server names ``generateName``
    objects (the prefix cut so the name stays within 63 characters)."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))
    return prefix[: _MAX_NAME - _SUFFIX_LENGTH] + suffix


def _named(resource: Resource, name: str) -> Resource:
    """``resource`` under another ``metadata.name`` (a copy; the original is untouched)."""
    manifest = dict(resource.manifest)
    metadata = dict(manifest.get("metadata") or {})
    metadata["name"] = name
    manifest["metadata"] = metadata
    return Resource(resource.key._replace(name=name), resource.api_version, manifest,
                    resource.origin)


@dataclass(frozen=True, slots=True)
class HookRun:
    """One run of a hook in one phase: the object it creates (its name generated if the
    hook has a ``generateName``) and the :class:`~gitops.model.Change` results report."""

    hook: Hook
    phase: HookPhase
    change: Change

    @property
    def resource(self) -> Resource:
        assert self.change.desired is not None
        return self.change.desired

    @property
    def key(self) -> ResourceKey:
        return self.change.key

    @property
    def named(self) -> bool:
        """The hook has a fixed name (it may exist from an earlier sync)."""
        return not self.hook.generate_name

    def deletes_on(self, succeeded: bool) -> bool:
        """Whether the hook's delete policy removes it once it ended this way."""
        policy = HookDeletePolicy.HOOK_SUCCEEDED if succeeded else HookDeletePolicy.HOOK_FAILED
        return policy in self.hook.delete_policies

    @property
    def recreated(self) -> bool:
        """``BeforeHookCreation``: an earlier instance with this name is deleted first."""
        return self.named and HookDeletePolicy.BEFORE_HOOK_CREATION in self.hook.delete_policies

    def describe(self) -> str:
        """``PreSync hook Job.batch/apps/migrate-x7k2p`` for messages."""
        return f"{self.phase.value} hook {self.key}"


def phase_runs(
    hooks: Iterable[Hook], existing: Iterable[ResourceKey] = ()
) -> dict[HookPhase, list[HookRun]]:
    """Every run of ``hooks`` by phase, in (wave, kind order, name) order.

    Each run of a ``generateName`` hook gets its own generated name. A run is reported as
    an update where a named hook already exists (in ``existing``) and is not re-created.
    """
    present = set(existing)
    runs: dict[HookPhase, list[HookRun]] = {phase: [] for phase in HookPhase}
    for hook in hooks:
        for phase in hook.phases:
            res = hook.resource
            if hook.generate_name:
                res = _named(res, generated_name(hook.generate_name))
            run = HookRun(hook, phase, Change(Action.CREATE, res.key, res.api_version, res,
                                                 wave=hook.wave))
            if run.named and not run.recreated and res.key in present:
                run = HookRun(hook, phase, Change(Action.UPDATE, res.key, res.api_version, res,
                                                     wave=hook.wave))
            runs[phase].append(run)
    for phase_list in runs.values():
        phase_list.sort(key=lambda r: apply_order(r.hook.wave, r.key))
    return runs


def waves(runs: Sequence[HookRun]) -> list[list[HookRun]]:
    """Sorted runs split into consecutive groups of the same wave."""
    groups: list[list[HookRun]] = []
    for run in runs:
        if not groups or groups[-1][0].hook.wave != run.hook.wave:
            groups.append([])
        groups[-1].append(run)
    return groups


def sync_steps(
    changes: Sequence[Change], runs: Sequence[HookRun]
) -> list[tuple[list[Change], list[HookRun]]]:
    """The Sync phase in order: each apply wave with the ``Sync`` hooks of that wave (a wave
    of hooks alone where no change has it), then the deletion waves."""
    by_wave: dict[int, list[HookRun]] = {}
    for run in runs:
        by_wave.setdefault(run.hook.wave, []).append(run)
    steps: list[tuple[list[Change], list[HookRun]]] = []
    deletions: list[tuple[list[Change], list[HookRun]]] = []
    for group in group_waves(changes):
        if group[0].action is Action.DELETE:
            deletions.append((group, []))
            continue
        wave = group[0].wave
        steps += [([], by_wave.pop(w)) for w in sorted(by_wave) if w < wave]
        steps.append((group, by_wave.pop(wave, [])))
    steps += [([], by_wave[w]) for w in sorted(by_wave)]
    return steps + deletions


def completion(health: HealthStatus) -> bool | None:
    """Whether a hook with this health has succeeded (True), failed (False), or is still
    running (None).

    A Job is done when its ``Complete`` (or ``Failed``) condition is True, a Pod in phase
    ``Succeeded`` (``Failed``) (:mod:`gitops.health`); a kind with no such notion is
    Healthy once it exists. A hook that went Missing after it was created failed: it
    cannot be seen to complete.
    """
    if health is HealthStatus.HEALTHY:
        return True
    if health in (HealthStatus.DEGRADED, HealthStatus.MISSING):
        return False
    return None
