"""The pure parts of hooks and sync options: annotations read, names generated, phases
ordered, and the health of the kinds hooks use (Job, Pod) judged as kstatus and Argo CD do."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gitops.errors import ManifestError
from gitops.health import assess, failure_message
from gitops.hooks import SKIP, completion, generated_name, hook_of, phase_runs, split, sync_steps
from gitops.manifests import validate_manifests
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
from gitops.ordering import wave_of
from gitops.syncoptions import prune_disabled, sync_options, unsupported, validation_disabled


def job(name: str | None = "migrate", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "apps", "annotations": annotations}
    if name is None:
        meta["generateName"] = "migrate-"
    else:
        meta["name"] = name
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}}


def resource(manifest: dict[str, Any]) -> Resource:
    return validate_manifests([manifest], path="hooks.yaml")[0]


# -- annotations ---------------------------------------------------------------------------


def test_hook_phases_and_the_default_delete_policy() -> None:
    hook = hook_of(resource(job(**{"argocd.argoproj.io/hook": "PreSync, PostSync"})))
    assert isinstance(hook, Hook)
    assert hook.phases == (HookPhase.PRE_SYNC, HookPhase.POST_SYNC)
    assert hook.delete_policies == {HookDeletePolicy.BEFORE_HOOK_CREATION}
    assert hook.generate_name == "" and hook.wave == 0


def test_our_prefix_policies_and_waves_are_read() -> None:
    hook = hook_of(resource(job(**{
        "gitops.dev/hook": "Sync",
        "gitops.dev/hook-delete-policy": "HookSucceeded,HookFailed",
        "argocd.argoproj.io/sync-wave": "3",
    })))
    assert isinstance(hook, Hook)
    assert hook.phases == (HookPhase.SYNC,) and hook.wave == 3
    assert hook.delete_policies == {HookDeletePolicy.HOOK_SUCCEEDED, HookDeletePolicy.HOOK_FAILED}


def test_a_resource_without_hook_annotations_is_desired_state() -> None:
    plain = resource(job(**{"argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}))
    assert hook_of(plain) is None
    assert split([plain]) == ((plain,), (), ())


def test_skip_marks_a_resource_never_applied() -> None:
    skipped = resource(job(**{"argocd.argoproj.io/hook": "Skip"}))
    assert hook_of(skipped) == SKIP
    assert split([skipped]) == ((), (), (skipped.key,))


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"argocd.argoproj.io/hook": "PreSynk"}, "unknown hook 'PreSynk'"),
        ({"argocd.argoproj.io/hook": "PostDelete"}, "unknown hook 'PostDelete'"),
        ({"argocd.argoproj.io/hook": "Skip,PreSync"}, "Skip cannot be combined"),
        ({"argocd.argoproj.io/hook": " , "}, "annotation argocd.argoproj.io/hook is empty"),
        ({"argocd.argoproj.io/hook": "PreSync", "gitops.dev/hook": "PostSync"}, "disagree"),
        ({"gitops.dev/hook": "Sync", "gitops.dev/hook-delete-policy": "Always"},
         "unknown delete policy 'Always'"),
    ],
)
def test_wrong_hook_annotations_name_the_file(annotations: dict[str, str], expected: str) -> None:
    with pytest.raises(ManifestError) as exc:
        hook_of(resource(job(**annotations)))
    assert expected in str(exc.value) and "hooks.yaml" in str(exc.value)


def test_generate_name_is_only_for_hooks() -> None:
    with pytest.raises(ManifestError, match="only a hook"):
        resource(job(None))
    hook = hook_of(resource(job(None, **{"argocd.argoproj.io/hook": "PreSync"})))
    assert isinstance(hook, Hook)
    assert hook.generate_name == "migrate-" and hook.key.name == "migrate-"


def test_generated_names_are_the_prefix_and_five_characters() -> None:
    names = {generated_name("migrate-") for _ in range(50)}
    assert all(re.fullmatch(r"migrate-[a-z0-9]{5}", n) for n in names)
    assert len(names) > 45  # random, not a counter
    long = generated_name("x" * 80)
    assert len(long) == 63 and long.startswith("x" * 58)


# -- ordering ------------------------------------------------------------------------------


def _hook(name: str, phase: str, wave: int = 0, kind: str = "Job") -> Hook:
    manifest = job(name, **{"gitops.dev/hook": phase, "gitops.dev/sync-wave": str(wave)})
    manifest["kind"] = kind
    hook = hook_of(resource(manifest))
    assert isinstance(hook, Hook)
    return hook


def test_phase_runs_order_by_wave_then_kind_and_run_each_phase() -> None:
    hooks = [_hook("b", "PreSync", 1), _hook("a", "PreSync,PostSync", 1),
             _hook("c", "PreSync", -1), _hook("d", "PreSync", 1, kind="ConfigMap")]
    runs = phase_runs(hooks)
    assert [r.key.name for r in runs[HookPhase.PRE_SYNC]] == ["c", "d", "a", "b"]
    assert [r.key.name for r in runs[HookPhase.POST_SYNC]] == ["a"]
    assert runs[HookPhase.SYNC] == runs[HookPhase.SYNC_FAIL] == []


def test_each_run_of_a_generated_hook_gets_its_own_name() -> None:
    hook = hook_of(resource(job(None, **{"gitops.dev/hook": "PreSync,PostSync"})))
    assert isinstance(hook, Hook)
    runs = phase_runs([hook])
    names = [runs[p][0].key.name for p in (HookPhase.PRE_SYNC, HookPhase.POST_SYNC)]
    assert names[0] != names[1] and all(n.startswith("migrate-") for n in names)
    assert runs[HookPhase.PRE_SYNC][0].resource.manifest["metadata"]["name"] == names[0]
    assert "name" not in hook.resource.manifest["metadata"]  # the declared hook is untouched


def test_a_named_hook_that_exists_and_is_not_recreated_is_an_update() -> None:
    kept = _hook("kept", "PreSync")
    kept = Hook(kept.resource, kept.phases, frozenset({HookDeletePolicy.HOOK_SUCCEEDED}))
    recreated = _hook("again", "PreSync")
    runs = phase_runs([kept, recreated], existing=[kept.key, recreated.key])
    actions = {r.key.name: r.change.action for r in runs[HookPhase.PRE_SYNC]}
    assert actions == {"kept": Action.UPDATE, "again": Action.CREATE}


def test_sync_hooks_join_the_apply_wave_of_their_number() -> None:
    def change(name: str, wave: int, action: Action = Action.CREATE) -> Change:
        return Change(action, ResourceKey("", "ConfigMap", "apps", name), "v1", wave=wave)

    changes = [change("w0", 0), change("w2", 2), change("gone", 0, Action.DELETE)]
    runs = phase_runs([_hook("h-1", "Sync", -1), _hook("h2", "Sync", 2), _hook("h5", "Sync", 5)])
    steps = sync_steps(changes, runs[HookPhase.SYNC])
    shown = [([c.key.name for c in cs], [r.key.name for r in rs]) for cs, rs in steps]
    assert shown == [([], ["h-1"]), (["w0"], []), (["w2"], ["h2"]), ([], ["h5"]), (["gone"], [])]


def test_argo_cd_sync_wave_is_read_and_ours_wins() -> None:
    assert wave_of(resource(job(**{"argocd.argoproj.io/sync-wave": "-2"}))) == -2
    both = {"argocd.argoproj.io/sync-wave": "-2", "gitops.dev/sync-wave": "4"}
    assert wave_of(resource(job(**both))) == 4
    with pytest.raises(ManifestError, match=r"argocd\.argoproj\.io/sync-wave must be an integer"):
        wave_of(resource(job(**{"argocd.argoproj.io/sync-wave": "soon"})))


# -- sync options --------------------------------------------------------------------------


def test_sync_options_are_parsed_from_both_annotations() -> None:
    res = resource(job(**{"argocd.argoproj.io/sync-options": " Prune=false , Replace=true",
                          "gitops.dev/sync-options": "Prune=true,Validate=false"}))
    assert sync_options(res) == {"Prune": "true", "Replace": "true", "Validate": "false"}
    assert not prune_disabled(res)  # ours wins
    assert validation_disabled(res)
    assert unsupported(res) == ["Replace=true"]


@pytest.mark.parametrize("value", ["Prune=false", "Delete=false", "Delete=false,Prune=true"])
def test_prune_or_delete_false_disables_pruning(value: str) -> None:
    assert prune_disabled(resource(job(**{"argocd.argoproj.io/sync-options": value})))


def test_unknown_or_unsupported_values_are_reported_as_written() -> None:
    res = resource(job(**{"argocd.argoproj.io/sync-options":
                          "Prune=confirm,ServerSideApply=true,prune=false,Weird"}))
    assert unsupported(res) == ["Prune=confirm", "ServerSideApply=true", "prune=false", "Weird"]
    assert not prune_disabled(res)


# -- health of what hooks are made of --------------------------------------------------------


def _job_with(*conditions: dict[str, str], suspend: bool = False) -> dict[str, Any]:
    manifest = job()
    manifest["spec"]["suspend"] = suspend
    manifest["status"] = {"conditions": list(conditions)}
    return manifest


def test_job_health_follows_its_complete_and_failed_conditions() -> None:
    assert assess(_job_with()) is HealthStatus.PROGRESSING
    assert assess(_job_with({"type": "Complete", "status": "True"})) is HealthStatus.HEALTHY
    assert assess(_job_with({"type": "Complete", "status": "False"})) is HealthStatus.PROGRESSING
    failed = _job_with({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit"})
    assert assess(failed) is HealthStatus.DEGRADED
    assert failure_message(failed) == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit")
    assert assess(_job_with(suspend=True)) is HealthStatus.SUSPENDED
    done = _job_with({"type": "Complete", "status": "True"}, suspend=True)
    assert assess(done) is HealthStatus.HEALTHY  # finished before it was suspended


def _pod(phase: str, restart: str = "Never", status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"},
            "spec": {"restartPolicy": restart, "containers": [{"name": "c"}]},
            "status": {"phase": phase, **(status or {})}}


def test_pod_health_by_phase_and_restart_policy() -> None:
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert assess(_pod("Succeeded")) is HealthStatus.HEALTHY
    assert assess(_pod("Failed")) is HealthStatus.DEGRADED
    # A pod that runs to completion (a hook's) is not done while it runs, ready or not.
    assert assess(_pod("Running", "Never", ready)) is HealthStatus.PROGRESSING
    assert assess(_pod("Running", "Always", ready)) is HealthStatus.HEALTHY
    backoff = {"containerStatuses": [{"name": "c", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "no such image"}}}]}
    assert assess(_pod("Pending", "Always", backoff)) is HealthStatus.DEGRADED
    assert assess(_pod("Pending", "Never", backoff)) is HealthStatus.PROGRESSING


def test_pod_failure_messages() -> None:
    exited = {"containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 3}}}]}
    assert failure_message(_pod("Failed", "Never", exited)) == "container 'c' failed with exit code 3"
    assert failure_message(_pod("Failed", "Never", {"message": "evicted"})) == "evicted"
    assert failure_message(None) == ""


def test_completion_of_a_hook_by_health() -> None:
    assert completion(HealthStatus.HEALTHY) is True
    assert completion(HealthStatus.DEGRADED) is False
    assert completion(HealthStatus.MISSING) is False
    for running in (HealthStatus.PROGRESSING, HealthStatus.SUSPENDED, HealthStatus.UNKNOWN):
        assert completion(running) is None
