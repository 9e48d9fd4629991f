"""Resource hooks and sync options in the engine, on the in-memory target.

Job health comes from a small "controller" (a status factory: a Job completes, or fails
when annotated to) judged by the real :mod:`gitops.health`; where the timing matters, a
target whose health is scripted. What is asserted is what the engine does: the order of
the target's calls, what it holds afterwards, the results and the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops import Event, HealthStatus, Outcome, Reconciler, Resource, ResourceKey, SyncResult
from gitops.errors import SyncInterrupted, UnreachableError
from gitops.model import Action, HookPhase
from gitops.sources.directory import DirectorySource
from gitops.targets.base import Target
from gitops.targets.filetree import FileTreeTarget
from gitops.testing import FailWhen, MemoryTarget

HOOK = "argocd.argoproj.io/hook"
POLICY = "argocd.argoproj.io/hook-delete-policy"
RESULT = "test.gitops.dev/job-result"  # read by the fake Job controller below

NS = ResourceKey("", "Namespace", "", "apps")
CM = ResourceKey("", "ConfigMap", "apps", "config")
WEB = ResourceKey("apps", "Deployment", "apps", "web")


def job_key(name: str) -> ResourceKey:
    return ResourceKey("batch", "Job", "apps", name)


def ns() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}


def cm(name: str = "config", value: str = "1", **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "apps", "annotations": annotations},
            "data": {"value": value}}


def deploy(wave: int = 0) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps",
                         "annotations": {"gitops.dev/sync-wave": str(wave)}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def job(name: str, hook: str, **annotations: str) -> dict[str, Any]:
    """A Job hook; a ``name`` ending in ``-`` is its ``generateName``."""
    meta: dict[str, Any] = {"namespace": "apps", "annotations": {HOOK: hook, **annotations}}
    meta["generateName" if name.endswith("-") else "name"] = name
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}}}}


def job_controller(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Jobs complete at once, or fail when annotated ``test.gitops.dev/job-result: Failed``;
    Deployments are available at once."""
    if obj["kind"] == "Deployment":
        n = obj["spec"]["replicas"]
        return {"observedGeneration": obj["metadata"]["generation"], "replicas": n,
                "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n}
    if obj["kind"] != "Job":
        return None
    if (obj["metadata"].get("annotations") or {}).get(RESULT) == "Failed":
        return {"conditions": [{"type": "Failed", "status": "True",
                                "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff limit"}]}
    return {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}


def write(root: Path, docs: Sequence[dict[str, Any]]) -> None:
    root.mkdir(exist_ok=True)
    (root / "all.yaml").write_text(yaml.safe_dump_all(list(docs)))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return tmp_path / "src"


@pytest.fixture
def target() -> MemoryTarget:
    return MemoryTarget(status_factory=job_controller)


def rec(src: Path, target: Target, events: list[Event] | None = None, **options: Any) -> Reconciler:
    options.setdefault("name", "app")
    options.setdefault("wait_interval", 0.005)
    options.setdefault("wait_timeout", 5.0)  # a test that waits this long has failed
    return Reconciler(DirectorySource(src), target, sleep=lambda s: None,
                      on_event=events.append if events is not None else None, **options)


def writes(target: MemoryTarget) -> list[tuple[str, str]]:
    """The real (not dry-run) applies and deletes, in order: (method, key name)."""
    return [(c.method, c.key.name) for c in target.calls
            if c.method in ("apply", "delete") and not c.dry_run and c.key is not None]


def rows(result: SyncResult) -> list[tuple[str | None, str, str]]:
    """(hook phase, name, outcome) of every result, in order."""
    return [(r.hook.value if r.hook else None, r.change.key.name, r.outcome.value)
            for r in result.results]


# -- order and bookkeeping -------------------------------------------------------------------


def test_hooks_run_in_their_phases_around_the_waves(src: Path, target: MemoryTarget) -> None:
    write(src, [ns(), cm(), deploy(wave=1),
                job("pre", "PreSync"), job("during", "Sync", **{"gitops.dev/sync-wave": "1"}),
                job("early", "Sync", **{"gitops.dev/sync-wave": "-1"}), job("post", "PostSync"),
                job("onfail", "SyncFail")])
    events: list[Event] = []
    result = rec(src, target, events).sync()
    assert result.succeeded, result.results
    # The Namespace the PreSync hook lives in is created first, as Argo CD does.
    assert writes(target) == [("apply", "apps"), ("apply", "pre"), ("apply", "early"),
                              ("apply", "config"), ("apply", "web"), ("apply", "during"),
                              ("apply", "post")]
    assert rows(result) == [("PreSync", "pre", "succeeded"), (None, "apps", "succeeded"),
                            (None, "config", "succeeded"), (None, "web", "succeeded"),
                            ("Sync", "early", "succeeded"), ("Sync", "during", "succeeded"),
                            ("PostSync", "post", "succeeded")]
    assert all(r.health is HealthStatus.HEALTHY for r in result.hooks)
    # Hooks are not desired state: not in the plan's changes nor in the inventory.
    inventory = target.read_inventory("app")
    assert inventory is not None and inventory.keys == {NS, CM, WEB}
    assert [h.key.name for h in result.plan.hooks] == ["pre", "during", "early", "post", "onfail"]
    reasons = [(e.reason, e.key.name if e.key else "") for e in events]
    assert ("HookCreated", "pre") in reasons and ("HookSucceeded", "post") in reasons
    assert reasons.index(("HookSucceeded", "pre")) < reasons.index(("Created", "config"))
    assert not any(r == "HookFailed" for r, _ in reasons)
    data = result.to_dict()
    assert data["changes"][0]["hook"] == "PreSync" and "hook" not in data["changes"][1]
    assert result.plan.to_dict()["hooks"][0] == {
        "phases": ["PreSync"], "apiVersion": "batch/v1", "kind": "Job", "namespace": "apps",
        "name": "pre", "deletePolicies": ["BeforeHookCreation"], "wave": 0}


def test_a_sync_without_changes_runs_no_hooks_and_writes_nothing(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(), job("pre", "PreSync"), job("post", "PostSync")])
    assert rec(src, target).sync().succeeded
    target.reset_calls()
    events: list[Event] = []
    again = rec(src, target, events).sync()
    assert again.succeeded and again.results == () and again.plan.in_sync
    counts = target.counts()
    assert counts["apply"] == counts["delete"] == counts["write_inventory"] == 0
    assert not [e for e in events if e.reason.startswith("Hook")]


def test_hooks_are_not_drift(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(), job("pre", "PreSync", **{POLICY: "HookFailed"})])
    rec(src, target).sync()
    target.mutate(job_key("pre"), lambda o: o["spec"].__setitem__("backoffLimit", 9))
    assert rec(src, target).plan().in_sync  # edited by hand: not diffed
    target.delete(job_key("pre"))
    assert rec(src, target).plan().in_sync  # gone: not re-created outside a sync


def test_a_named_hook_of_two_phases_is_recreated_in_the_second(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(), job("check", "PreSync,PostSync")])
    result = rec(src, target).sync()
    assert result.succeeded
    assert writes(target) == [("apply", "check"), ("apply", "config"), ("delete", "check"),
                              ("apply", "check")]
    assert [r.hook for r in result.hooks] == [HookPhase.PRE_SYNC, HookPhase.POST_SYNC]


def test_namespaces_and_crds_presync_hooks_need_are_created_first(src: Path) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "backups.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"kind": "Backup", "plural": "backups"}}}
    backup = {"apiVersion": "example.com/v1", "kind": "Backup",
              "metadata": {"name": "before", "namespace": "db", "annotations": {HOOK: "PreSync"}}}
    other_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "db"}}
    target = MemoryTarget(status_factory=job_controller, faults=[FailWhen(
        lambda c: c.key is not None and c.key.name == "migrate", method="apply", dry_run=False,
        transient=False)])
    write(src, [ns(), other_ns, crd, cm(), backup, job("migrate", "PreSync",
                                                         **{"gitops.dev/sync-wave": "1"})])
    result = rec(src, target).sync()
    assert [name for _, name in writes(target)] == [
        "apps", "db", "backups.example.com", "before", "migrate"]
    assert result.message.startswith("PreSync hook Job.batch/apps/migrate failed")
    by_name = {r.change.key.name: r.outcome for r in result.results}
    assert by_name["config"] is Outcome.SKIPPED
    inventory = target.read_inventory("app")  # what was created is owned
    assert inventory is not None
    assert {k.name for k in inventory.keys} >= {"apps", "db", "backups.example.com"}


def test_a_hook_is_run_again_by_the_next_sync_that_changes_something(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(), job("pre", "PreSync")])
    rec(src, target).sync()
    first_uid = target.objects()[job_key("pre")]["metadata"]["uid"]
    write(src, [cm(value="2"), job("pre", "PreSync")])
    target.reset_calls()
    events: list[Event] = []
    result = rec(src, target, events).sync()
    assert result.succeeded
    # BeforeHookCreation (the default): the earlier instance is deleted, then created anew.
    assert writes(target) == [("delete", "pre"), ("apply", "pre"), ("apply", "config")]
    assert target.objects()[job_key("pre")]["metadata"]["uid"] != first_uid
    assert [e.reason for e in events if e.key == job_key("pre")] == [
        "HookDeleted", "HookCreated", "HookSucceeded"]


def test_generate_name_creates_a_new_object_each_run(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(), job("migrate-", "PreSync,PostSync")])
    result = rec(src, target).sync()
    assert result.succeeded
    names = [r.change.key.name for r in result.hooks]
    assert len(names) == 2 and names[0] != names[1]
    assert all(n.startswith("migrate-") and len(n) == len("migrate-") + 5 for n in names)
    jobs = {k.name for k in target.objects() if k.kind == "Job"}
    assert jobs == set(names)
    write(src, [cm(value="2"), job("migrate-", "PreSync,PostSync")])
    rec(src, target).sync()
    assert len({k for k in target.objects() if k.kind == "Job"}) == 4  # never pruned
    inventory = target.read_inventory("app")
    assert inventory is not None and inventory.keys == {CM}


def test_delete_policies_after_the_hook_ends(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(),
                job("ok-", "PreSync", **{POLICY: "HookSucceeded"}),
                job("keep-ok", "Sync", **{POLICY: "HookFailed"}),
                job("bad", "PostSync", **{POLICY: "HookFailed", RESULT: "Failed"}),
                job("keep-bad", "PostSync", **{POLICY: "HookSucceeded", RESULT: "Failed"})])
    result = rec(src, target).sync()
    assert not result.succeeded
    jobs = {k.name for k in target.objects() if k.kind == "Job"}
    assert jobs == {"keep-ok", "keep-bad"}
    deleted = [name for method, name in writes(target) if method == "delete"]
    assert len(deleted) == 2 and deleted[0].startswith("ok-") and deleted[1] == "bad"


# -- failures ------------------------------------------------------------------------------


def test_a_failed_presync_hook_stops_the_sync(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(), deploy(),
                job("migrate", "PreSync", **{RESULT: "Failed"}), job("after", "PreSync",
                                                                     **{"gitops.dev/sync-wave": "1"}),
                job("sync", "Sync"), job("post", "PostSync"),
                job("cleanup", "SyncFail"), job("notify-", "SyncFail")])
    events: list[Event] = []
    result = rec(src, target, events).sync()
    assert not result.succeeded
    assert result.message == ("PreSync hook Job.batch/apps/migrate failed: "
                              "BackoffLimitExceeded: Job has reached the specified backoff limit")
    # Nothing else was applied, not even the inventory; the SyncFail hooks ran.
    applied = [name for method, name in writes(target) if method == "apply"]
    assert applied[:2] == ["migrate", "cleanup"] and applied[2].startswith("notify-")
    assert len(applied) == 3
    assert target.read_inventory("app") is None
    by_name = {r.change.key.name: r for r in result.results}
    assert by_name["migrate"].outcome is Outcome.FAILED
    assert by_name["migrate"].health is HealthStatus.DEGRADED
    skipped = "not attempted: PreSync hook Job.batch/apps/migrate failed"
    for name in ("after", "config", "web", "sync", "post"):
        assert by_name[name].outcome is Outcome.SKIPPED and by_name[name].message == skipped
    assert by_name["cleanup"].outcome is Outcome.SUCCEEDED
    assert by_name["cleanup"].hook is HookPhase.SYNC_FAIL
    failed = [e for e in events if e.reason == "HookFailed"]
    assert len(failed) == 1 and failed[0].key == job_key("migrate") and failed[0].warning
    sync_failed = [e for e in events if e.reason == "SyncFailed"]
    assert "PreSync hook Job.batch/apps/migrate failed" in sync_failed[0].message


def test_a_failed_sync_hook_blocks_later_waves_and_runs_syncfail(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(), deploy(wave=1), job("check", "Sync", **{RESULT: "Failed"}),
                job("post", "PostSync"), job("onfail", "SyncFail")])
    result = rec(src, target).sync()
    assert not result.succeeded
    assert [name for _, name in writes(target)] == ["config", "check", "onfail"]
    by_name = {r.change.key.name: r for r in result.results}
    assert by_name["web"].message == (
        "not attempted: Sync hook Job.batch/apps/check failed in an earlier wave")
    assert by_name["post"].outcome is Outcome.SKIPPED
    inventory = target.read_inventory("app")
    assert inventory is not None and inventory.revision == ""  # not advanced: the sync failed


def test_syncfail_hooks_run_when_a_change_fails(src: Path) -> None:
    target = MemoryTarget(status_factory=job_controller, faults=[
        FailWhen(lambda c: c.key == WEB, method="apply", dry_run=False, transient=False)])
    write(src, [cm(), deploy(), job("post", "PostSync"), job("onfail", "SyncFail")])
    result = rec(src, target).sync()
    assert rows(result)[-2:] == [("PostSync", "post", "skipped"), ("SyncFail", "onfail", "succeeded")]
    assert result.message == ""  # no hook failed: the failed change says why


def test_a_failed_postsync_hook_fails_the_sync_and_runs_syncfail(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(), job("smoke", "PostSync", **{RESULT: "Failed"}), job("onfail", "SyncFail")])
    result = rec(src, target).sync()
    assert rows(result) == [(None, "config", "succeeded"), ("PostSync", "smoke", "failed"),
                            ("SyncFail", "onfail", "succeeded")]
    assert result.message.startswith("PostSync hook Job.batch/apps/smoke failed: ")
    inventory = target.read_inventory("app")  # everything was applied: the revision is there
    assert inventory is not None and inventory.revision == result.revision


def test_syncfail_hooks_do_not_run_when_the_sync_succeeds(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(), job("onfail", "SyncFail")])
    result = rec(src, target).sync()
    assert result.succeeded and result.hooks == ()
    assert job_key("onfail") not in target.objects()


def test_a_hook_that_fails_to_apply_is_a_failed_hook(src: Path) -> None:
    target = MemoryTarget(status_factory=job_controller, faults=[FailWhen(
        lambda c: c.key == job_key("pre"), method="apply", dry_run=False, transient=False)])
    write(src, [cm(), job("pre", "PreSync")])
    result = rec(src, target).sync()
    assert rows(result) == [("PreSync", "pre", "failed"), (None, "config", "skipped")]
    assert result.message.startswith("PreSync hook Job.batch/apps/pre failed: ")


def test_a_target_lost_during_presync_ends_the_sync(src: Path) -> None:
    class LostAfterFirstHook(MemoryTarget):
        def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
            if not dry_run and resource.name == "second":
                raise UnreachableError("mock: connection refused", url="mock:")
            return super().apply(resource, dry_run=dry_run)

    target = LostAfterFirstHook(status_factory=job_controller)
    write(src, [cm(), job("first", "PreSync"), job("second", "PreSync"),
                job("third", "PreSync", **{"gitops.dev/sync-wave": "1"}), job("onfail", "SyncFail")])
    result = rec(src, target).sync()
    unreachable = "not attempted: the target is unreachable"
    assert [(name, outcome) for _, name, outcome in rows(result)] == [
        ("first", "failed"), ("second", "failed"), ("third", "skipped"), ("config", "skipped"),
        ("onfail", "skipped")]
    assert result.results[0].message == f"not awaited ({unreachable})"
    assert {r.message for r in result.results[2:]} == {unreachable}


def test_validation_covers_hooks_before_the_first_write(src: Path) -> None:
    target = MemoryTarget(status_factory=job_controller, faults=[FailWhen(
        lambda c: c.key == job_key("post"), method="apply", dry_run=True, transient=False)])
    write(src, [cm(), job("pre", "PreSync"), job("post", "PostSync")])
    result = rec(src, target).sync()
    assert writes(target) == [] and target.read_inventory("app") is None
    assert rows(result) == [("PreSync", "pre", "skipped"), (None, "config", "skipped"),
                            ("PostSync", "post", "failed")]


def test_secret_values_are_masked_in_hook_failures(src: Path) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "seed", "namespace": "apps", "annotations": {HOOK: "PreSync"}},
              "stringData": {"password": "hunter2-very-secret"}}

    class Quoting(MemoryTarget):
        def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
            if resource.key.kind == "Secret" and not dry_run:
                raise RuntimeError(f"refused {resource.manifest['stringData']}")
            return super().apply(resource, dry_run=dry_run)

    target = Quoting(status_factory=job_controller)
    write(src, [cm(), secret])
    events: list[Event] = []
    result = rec(src, target, events).sync()
    text = repr(result) + result.message + str(result.to_dict()) + repr(events)
    assert "hunter2-very-secret" not in text
    assert result.hooks[0].outcome is Outcome.FAILED and "refused" in result.hooks[0].message
    assert result.message.startswith("PreSync hook Secret/apps/seed failed: ")
    assert "'password': '++++++++'" in result.message  # masked


# -- health gating -------------------------------------------------------------------------


class ScriptedHealth(MemoryTarget):
    """Health as the test scripts it: name prefix -> statuses returned in turn (the last one
    repeats); other objects as the stored object says. Records every health call."""

    def __init__(self, script: dict[str, list[HealthStatus]]) -> None:
        super().__init__(status_factory=job_controller)
        self.script = {prefix: list(statuses) for prefix, statuses in script.items()}
        self.asked: list[str] = []

    def health(self, resource: Resource) -> HealthStatus:
        self.asked.append(resource.name)
        for prefix, statuses in self.script.items():
            if resource.name.startswith(prefix):
                return statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return super().health(resource)


def test_the_engine_waits_for_a_hook_to_complete_without_wait(src: Path) -> None:
    progressing, healthy = HealthStatus.PROGRESSING, HealthStatus.HEALTHY
    target = ScriptedHealth({"pre": [progressing, progressing, progressing, healthy]})
    write(src, [cm(), job("pre", "PreSync")])
    result = rec(src, target).sync()  # wait=False: hooks are awaited all the same
    assert result.succeeded
    assert target.asked == ["pre"] * 4
    # The ConfigMap was applied only once the hook had completed.
    order = [c.key.name for c in target.calls if c.method in ("apply",) and not c.dry_run
             and c.key is not None]
    assert order == ["pre", "config"]


def test_a_hook_that_never_completes_times_out(src: Path) -> None:
    target = ScriptedHealth({"pre": [HealthStatus.PROGRESSING]})
    write(src, [cm(), job("pre", "PreSync", **{POLICY: "HookFailed"}), job("onfail", "SyncFail")])
    result = Reconciler(DirectorySource(src), target, name="app", wait_timeout=0.05,
                        wait_interval=0.01).sync()
    hook = result.results[0]
    assert hook.outcome is Outcome.FAILED and hook.health is HealthStatus.PROGRESSING
    assert hook.message == "did not complete within 0.05s (still Progressing)"
    assert job_key("pre") not in target.objects()  # HookFailed: the timed-out hook is deleted
    assert rows(result)[-1] == ("SyncFail", "onfail", "succeeded")


def test_a_hook_that_disappears_has_failed(src: Path) -> None:
    target = ScriptedHealth({"pre": [HealthStatus.PROGRESSING, HealthStatus.MISSING]})
    write(src, [cm(), job("pre", "PreSync")])
    result = rec(src, target).sync()
    assert result.results[0].message == "deleted before it was seen to complete"
    assert not result.succeeded


def test_postsync_waits_until_everything_applied_is_healthy(src: Path) -> None:
    target = ScriptedHealth({"web": [HealthStatus.PROGRESSING, HealthStatus.HEALTHY]})
    write(src, [cm(), deploy(), job("post", "PostSync")])
    result = rec(src, target).sync()
    assert result.succeeded
    assert target.asked.index("post") > target.asked.index("web")
    assert target.asked.count("web") == 2
    applied = [name for method, name in writes(target) if method == "apply"]
    assert applied[-1] == "post"


def test_postsync_is_skipped_when_the_applied_objects_never_become_healthy(src: Path) -> None:
    target = ScriptedHealth({"web": [HealthStatus.DEGRADED]})
    write(src, [cm(), deploy(), job("post", "PostSync"), job("onfail", "SyncFail")])
    result = rec(src, target).sync()
    assert not result.succeeded
    assert rows(result)[-2:] == [("PostSync", "post", "skipped"), ("SyncFail", "onfail", "succeeded")]
    assert {r.change.key.name: r.message for r in result.failed} == {"web": "resource is Degraded"}
    inventory = target.read_inventory("app")
    assert inventory is not None and inventory.revision == ""  # not advanced


def test_without_postsync_hooks_no_extra_health_wait(src: Path) -> None:
    target = ScriptedHealth({"web": [HealthStatus.DEGRADED]})
    write(src, [cm(), deploy(), job("pre", "PreSync")])
    assert rec(src, target).sync().succeeded
    assert target.asked == ["pre"]


# -- Skip, hooks leaving desired state, sync options -----------------------------------------


def test_skip_resources_are_never_applied_nor_pruned(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(), cm("extra")])
    rec(src, target, prune=True).sync()
    extra = ResourceKey("", "ConfigMap", "apps", "extra")
    write(src, [cm(), cm("extra", value="2", **{HOOK: "Skip"}), cm("never", **{HOOK: "Skip"})])
    plan = rec(src, target, prune=True).plan()
    assert plan.in_sync and set(plan.skipped) == {extra, extra._replace(name="never")}
    result = rec(src, target, prune=True).sync()
    assert result.succeeded and writes(target)[-1] == ("apply", "extra")  # the first sync's
    assert target.objects()[extra]["data"] == {"value": "1"}
    inventory = target.read_inventory("app")
    assert inventory is not None and extra in inventory.keys  # still owned: pruned later if removed
    write(src, [cm(value="2")])
    rec(src, target, prune=True).sync()
    assert extra not in target.objects()


def test_an_object_that_becomes_a_hook_is_disowned_not_pruned(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(), cm("seed")])
    rec(src, target, prune=True).sync()
    write(src, [cm(value="2"), cm("seed", **{HOOK: "PostSync", POLICY: "HookFailed"})])
    target.reset_calls()
    result = rec(src, target, prune=True).sync()
    assert result.succeeded
    assert writes(target) == [("apply", "config"), ("apply", "seed")]
    inventory = target.read_inventory("app")
    assert inventory is not None and inventory.keys == {CM}


@pytest.mark.parametrize(
    "annotations",
    [{"argocd.argoproj.io/sync-options": "Prune=false"},
     {"gitops.dev/sync-options": "Delete=false"},
     {"gitops.dev/prune": "disabled"}],
)
def test_prune_false_keeps_an_object_out_of_the_source(
    src: Path, target: MemoryTarget, annotations: dict[str, str]
) -> None:
    write(src, [cm(), cm("kept", **annotations)])
    rec(src, target, prune=True).sync()
    write(src, [cm()])
    plan = rec(src, target, prune=True).plan()
    kept = ResourceKey("", "ConfigMap", "apps", "kept")
    assert plan.in_sync and plan.orphaned == (kept,)
    rec(src, target, prune=True).sync()
    assert kept in target.objects()


def test_validate_false_skips_the_dry_run_of_that_object(src: Path) -> None:
    fault = FailWhen(lambda c: c.key is not None and c.key.name == "raw", method="apply",
                     dry_run=True, transient=False)
    write(src, [cm(), cm("raw", **{"argocd.argoproj.io/sync-options": "Validate=false"})])
    target = MemoryTarget(faults=[fault])
    assert rec(src, target).sync().succeeded
    dry = rec(src, MemoryTarget(faults=[fault]), dry_run=True).sync()
    assert dry.succeeded
    assert {r.change.key.name: r.message for r in dry.results}["raw"] == (
        "dry run: not validated (sync option Validate=false)")


def test_unsupported_sync_options_are_reported_once_per_sync(
    src: Path, target: MemoryTarget
) -> None:
    write(src, [cm(**{"argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false"}),
                job("pre", "PreSync", **{"gitops.dev/sync-options": "Replace=true"})])
    for _ in range(2):
        events: list[Event] = []
        rec(src, target, events).sync()
        warned = [(e.key, e.message) for e in events if e.reason == "SyncOptionUnsupported"]
        assert [k for k, _ in warned] == [CM, job_key("pre")]
        assert "'ServerSideApply=true'" in warned[0][1] and "'Replace=true'" in warned[1][1]
        assert all(e.warning for e in events if e.reason == "SyncOptionUnsupported")


# -- dry run -------------------------------------------------------------------------------


def test_a_dry_run_validates_hooks_and_writes_nothing(src: Path, target: MemoryTarget) -> None:
    write(src, [cm(), job("pre", "PreSync"), job("mig-", "PostSync"),
                job("onfail", "SyncFail")])
    result = rec(src, target, dry_run=True).sync()
    assert result.succeeded and writes(target) == []
    assert [(r.hook, r.outcome) for r in result.results] == [
        (HookPhase.PRE_SYNC, Outcome.SUCCEEDED), (None, Outcome.SUCCEEDED),
        (HookPhase.POST_SYNC, Outcome.SUCCEEDED)]
    dry_runs = [c.key.name for c in target.calls if c.dry_run and c.key is not None]
    assert dry_runs[0] == "config" and dry_runs[1] == "pre" and dry_runs[2].startswith("mig-")


def test_interrupted_while_waiting_for_a_hook(src: Path) -> None:
    class Interrupting(ScriptedHealth):
        def health(self, resource: Resource) -> HealthStatus:
            raise KeyboardInterrupt

    target = Interrupting({})
    write(src, [cm(), job("pre", "PreSync")])
    with pytest.raises(SyncInterrupted) as exc:
        rec(src, target).sync()
    result = exc.value.result
    assert rows(result) == [("PreSync", "pre", "failed"), (None, "config", "skipped")]
    assert result.results[0].message == "interrupted before the hook completed"
    assert result.results[1].change.action is Action.CREATE


# -- on a file tree (no health model) ----------------------------------------------------------


def test_on_a_file_tree_a_hook_is_done_once_written(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(src, [ns(), cm(), job("migrate-", "PreSync", **{POLICY: "HookSucceeded"}),
                job("smoke", "PostSync"), job("onfail", "SyncFail")])
    events: list[Event] = []
    with FileTreeTarget(out) as target:
        result = rec(src, target, events).sync()
        assert result.succeeded
        assert [(r.hook, r.outcome, r.health) for r in result.hooks] == [
            (HookPhase.PRE_SYNC, Outcome.SUCCEEDED, None),
            (HookPhase.POST_SYNC, Outcome.SUCCEEDED, None)]
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml"))
        # The generated PreSync hook was written, then deleted (HookSucceeded); the named
        # PostSync hook stays; the SyncFail hook never ran.
        assert files == ["_cluster/Namespace/apps.yaml", "apps/ConfigMap/config.yaml",
                         "apps/Job.batch/smoke.yaml"]
        generated = [e.key.name for e in events if e.reason == "HookDeleted" and e.key]
        assert len(generated) == 1 and generated[0].startswith("migrate-")
        inventory = target.read_inventory("app")
        assert inventory is not None and inventory.keys == {NS, CM}
        before = (out / "apps/Job.batch/smoke.yaml").stat().st_mtime_ns
        again = rec(src, target).sync()
        assert again.results == () and again.succeeded
        assert (out / "apps/Job.batch/smoke.yaml").stat().st_mtime_ns == before


def test_one_long_lived_reconciler_sees_hooks_come_and_go(src: Path, target: MemoryTarget) -> None:
    """What the engine memoizes between plans (``run()``) follows hooks added and removed."""
    write(src, [cm()])
    reconciler = rec(src, target)
    assert reconciler.sync().plan.hooks == ()
    write(src, [cm(value="2"), job("pre", "PreSync")])
    assert [r.change.key.name for r in reconciler.sync().hooks] == ["pre"]
    write(src, [cm(value="3")])
    third = reconciler.sync()
    assert third.plan.hooks == () and third.hooks == () and third.succeeded
    write(src, [cm(value="3"), cm("more", **{HOOK: "Skip"})])
    assert reconciler.plan().skipped == (ResourceKey("", "ConfigMap", "apps", "more"),)
