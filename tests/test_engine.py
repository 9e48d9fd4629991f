"""Engine behaviour against the in-memory target and a real directory source."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import gitops
from gitops import Action, Event, HealthStatus, Outcome, Reconciler, ResourceKey
from gitops.differs.base import DEFAULT_POLICY
from gitops.differs.structural import StructuralDiffer
from gitops.errors import EmptySourceError, InputError, ManifestError
from gitops.model import Diff, DriftMode, DriftPolicy, Resource
from gitops.sources.directory import DirectorySource
from gitops.targets.base import Target
from gitops.targets.filetree import FileTreeTarget
from gitops.testing import FailNth, FailWhen, MemoryTarget


def cm(name: str, ns: str = "apps", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data or {"k": "v"},
    }


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deploy(name: str, ns: str = "apps", image: str = "nginx:1", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def write(root: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    """Replace the directory's YAML files with ``files`` (relative path -> documents)."""
    for old in root.rglob("*.yaml"):
        old.unlink()
    for rel, docs in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(docs))


CM_KEY = ResourceKey("", "ConfigMap", "apps", "one")
DEPLOY_KEY = ResourceKey("apps", "Deployment", "apps", "web")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    write(root, {"all.yaml": [ns("apps"), cm("one"), deploy("web")]})
    return root


@pytest.fixture
def target() -> MemoryTarget:
    return MemoryTarget()


def rec(src: Path, target: Target, **options: Any) -> Reconciler:
    options.setdefault("name", "default")
    return Reconciler(DirectorySource(src), target, sleep=lambda s: None, **options)


def test_first_sync_creates_in_dependency_order(src: Path, target: MemoryTarget) -> None:
    plan = rec(src, target).plan()
    assert [c.action for c in plan.changes] == [Action.CREATE] * 3
    assert [c.key.kind for c in plan.changes] == ["Namespace", "ConfigMap", "Deployment"]
    assert plan.revision.startswith("sha256:")
    result = rec(src, target).sync()
    assert result.succeeded and result.in_sync
    assert set(target.objects()) == {ResourceKey("", "Namespace", "", "apps"), CM_KEY, DEPLOY_KEY}
    stored = target.read_inventory("default")
    assert stored is not None and stored.revision == plan.revision
    assert stored.keys == set(target.objects())


def test_second_sync_is_a_noop(src: Path, target: MemoryTarget) -> None:
    rec(src, target).sync()
    target.reset_calls()
    result = rec(src, target).sync()
    assert result.succeeded and result.plan.in_sync and result.results == ()
    counts = target.counts()
    assert counts["apply"] == counts["delete"] == counts["write_inventory"] == 0
    assert counts["live"] == 1  # one read of live state, never one per object


def test_drift_is_reported_and_healed(src: Path, target: MemoryTarget) -> None:
    rec(src, target).sync()
    target.mutate(DEPLOY_KEY, lambda o: o["spec"].__setitem__("replicas", 7))
    plan = rec(src, target).plan()
    assert [(c.action, c.key) for c in plan.changes] == [(Action.UPDATE, DEPLOY_KEY)]
    diff = plan.changes[0].diff
    assert diff is not None and "replicas" in diff.text
    assert rec(src, target).sync().succeeded
    assert target.objects()[DEPLOY_KEY]["spec"]["replicas"] == 1
    assert rec(src, target).plan().in_sync


def test_fields_added_by_hand_are_drift_on_an_exact_target(
    src: Path, target: MemoryTarget
) -> None:
    """The in-memory target holds exactly what was applied: anything else is drift."""
    rec(src, target).sync()
    target.mutate(DEPLOY_KEY, lambda o: o["metadata"].setdefault("labels", {}).update(x="y"))
    plan = rec(src, target).plan()
    assert [(c.action, c.key) for c in plan.changes] == [(Action.UPDATE, DEPLOY_KEY)]
    diff = plan.changes[0].diff
    assert diff is not None and {"op": "remove", "path": "/metadata/labels"} in diff.patch
    assert "-    x: y" in diff.text.splitlines()
    assert rec(src, target).sync().succeeded
    assert "labels" not in target.objects()[DEPLOY_KEY]["metadata"]
    assert rec(src, target).plan().in_sync


class SubsetMemoryTarget(MemoryTarget):
    def drift_policy(self) -> DriftPolicy:
        return DriftPolicy(DriftMode.SUBSET)


def test_a_subset_drift_policy_ignores_fields_added_by_others(src: Path) -> None:
    target = SubsetMemoryTarget()
    rec(src, target).sync()
    target.mutate(DEPLOY_KEY, lambda o: o["metadata"].setdefault("labels", {}).update(x="y"))
    assert rec(src, target).plan().in_sync


def test_the_differ_receives_the_targets_drift_policy(
    src: Path, tmp_path: Path, target: MemoryTarget
) -> None:
    seen: list[DriftPolicy] = []

    class Recording(StructuralDiffer):
        def diff(self, desired: Resource, live: Resource | None,
                 policy: DriftPolicy = DEFAULT_POLICY) -> Diff:
            seen.append(policy)
            return super().diff(desired, live, policy)

    for tgt in (target, FileTreeTarget(tmp_path / "out")):
        rec(src, tgt).sync()
        seen.clear()
        given = Recording()
        assert rec(src, tgt, differ=given).differ is given
        rec(src, tgt, differ=given).plan()
        assert seen and {p.mode for p in seen} == {DriftMode.EXACT}


def open_exact_target(kind: str, tmp_path: Path) -> Target:
    return MemoryTarget() if kind == "memory" else FileTreeTarget(tmp_path / "out")


def stored(target: Target, key: ResourceKey) -> dict[str, Any]:
    found = target.live([key])
    assert key in found, f"{key} is missing"
    manifest: dict[str, Any] = found[key].manifest
    return manifest


@pytest.mark.parametrize("kind", ["memory", "file-tree"])
def test_fields_removed_from_the_source_are_removed_from_the_target(
    kind: str, src: Path, tmp_path: Path
) -> None:
    target = open_exact_target(kind, tmp_path)
    labelled = deploy("web")
    labelled["metadata"]["labels"] = {"app": "web", "tier": "front"}
    write(src, {"all.yaml": [ns("apps"), cm("one", a="1", b="2"), labelled]})
    assert rec(src, target).sync().succeeded

    del labelled["metadata"]["labels"]["tier"]
    write(src, {"all.yaml": [ns("apps"), cm("one", a="1"), labelled]})
    plan = rec(src, target).plan()
    assert [(c.action, c.key) for c in plan.changes] == [
        (Action.UPDATE, CM_KEY), (Action.UPDATE, DEPLOY_KEY)
    ]
    patches = {c.key: c.diff.patch for c in plan.changes if c.diff is not None}
    assert patches[CM_KEY] == ({"op": "remove", "path": "/data/b"},)
    assert patches[DEPLOY_KEY] == ({"op": "remove", "path": "/metadata/labels/tier"},)
    assert rec(src, target).sync(plan).succeeded
    assert stored(target, CM_KEY)["data"] == {"a": "1"}
    assert stored(target, DEPLOY_KEY)["metadata"]["labels"] == {"app": "web"}

    again = rec(src, target).sync()
    assert again.succeeded and again.results == ()


def test_a_field_added_by_hand_to_a_file_is_drift_and_healed(src: Path, tmp_path: Path) -> None:
    target = FileTreeTarget(tmp_path / "out")
    assert rec(src, target).sync().succeeded
    path = target.root / "apps" / "ConfigMap" / "one.yaml"
    edited = yaml.safe_load(path.read_text())
    edited["data"]["by-hand"] = "x"
    path.write_text(yaml.safe_dump(edited))
    plan = rec(src, target).plan()
    assert [(c.action, c.key) for c in plan.changes] == [(Action.UPDATE, CM_KEY)]
    assert rec(src, target).sync(plan).succeeded
    assert yaml.safe_load(path.read_text())["data"] == {"k": "v"}
    assert rec(src, target).plan().in_sync


def test_prune_deletes_only_what_the_inventory_owns(src: Path, target: MemoryTarget) -> None:
    rec(src, target, prune=True).sync()
    foreign = target.put(cm("foreign"))
    write(src, {"all.yaml": [ns("apps"), deploy("web")]})
    plan = rec(src, target, prune=True).plan()
    assert [(c.action, c.key) for c in plan.changes] == [(Action.DELETE, CM_KEY)]
    assert rec(src, target, prune=True).sync().succeeded
    assert CM_KEY not in target.objects()
    assert foreign.key in target.objects()
    stored = target.read_inventory("default")
    assert stored is not None and CM_KEY not in stored.keys


def test_without_prune_leftovers_are_extraneous_and_stay_owned(
    src: Path, target: MemoryTarget
) -> None:
    rec(src, target).sync()
    write(src, {"all.yaml": [ns("apps"), deploy("web")]})
    result = rec(src, target).sync()
    assert result.succeeded and result.plan.extraneous == (CM_KEY,)
    assert CM_KEY in target.objects()
    stored = target.read_inventory("default")
    assert stored is not None and CM_KEY in stored.keys  # a later prune can remove it
    target.reset_calls()
    assert rec(src, target).sync().results == ()
    assert target.counts()["write_inventory"] == 0
    pruned = rec(src, target, prune=True).sync()
    assert [(r.change.action, r.outcome) for r in pruned.results] == [
        (Action.DELETE, Outcome.SUCCEEDED)
    ]
    assert CM_KEY not in target.objects()


def test_prune_disabled_annotation_keeps_and_disowns(src: Path, target: MemoryTarget) -> None:
    rec(src, target, prune=True).sync()
    target.mutate(CM_KEY, lambda o: o["metadata"].setdefault("annotations", {}).update(
        {"gitops.dev/prune": "disabled"}))
    write(src, {"all.yaml": [ns("apps"), deploy("web")]})
    result = rec(src, target, prune=True).sync()
    assert result.succeeded and result.plan.orphaned == (CM_KEY,) and not result.plan.changes
    assert CM_KEY in target.objects()
    stored = target.read_inventory("default")
    assert stored is not None and CM_KEY not in stored.keys
    assert rec(src, target, prune=True).plan().in_sync


def test_deletions_come_last_in_reverse_order(src: Path, target: MemoryTarget) -> None:
    write(src, {"a.yaml": [ns("apps"), ns("b"), cm("one"), deploy("web")]})
    rec(src, target, prune=True).sync()
    write(src, {"a.yaml": [ns("apps"), cm("two")]})
    plan = rec(src, target, prune=True).plan()
    assert [(c.action.value, c.key.kind) for c in plan.changes] == [
        ("create", "ConfigMap"),
        ("delete", "Deployment"),
        ("delete", "ConfigMap"),
        ("delete", "Namespace"),
    ]


def test_sync_waves_order_and_block_later_waves(src: Path, target: MemoryTarget) -> None:
    write(src, {"a.yaml": [
        deploy("late", **{"gitops.dev/sync-wave": "5"}),
        deploy("early", **{"gitops.dev/sync-wave": "-1"}),
        ns("apps"),
    ]})
    plan = rec(src, target).plan()
    assert [c.key.name for c in plan.changes] == ["early", "apps", "late"]
    assert [c.wave for c in plan.changes] == [-1, 0, 5]
    # "early" is created before its namespace exists: the fault stands in for the refusal.
    failing = target.with_faults(FailWhen(lambda call: call.key is not None
                                          and call.key.name == "early", transient=False))
    result = Reconciler(DirectorySource(src), failing).sync()
    outcomes = {r.change.key.name: r.outcome for r in result.results}
    assert outcomes == {"early": Outcome.FAILED, "apps": Outcome.SKIPPED, "late": Outcome.SKIPPED}
    assert target.objects() == {}


def test_invalid_sync_wave_is_a_plan_error(src: Path, target: MemoryTarget) -> None:
    write(src, {"a.yaml": [deploy("web", **{"gitops.dev/sync-wave": "soon"})]})
    with pytest.raises(ManifestError, match=r"a\.yaml.*sync-wave"):
        rec(src, target).plan()


def test_invalid_file_changes_nothing(src: Path, target: MemoryTarget) -> None:
    rec(src, target, prune=True).sync()
    before = target.objects()
    write(src, {"all.yaml": [ns("apps"), cm("one", extra="x")]})
    (src / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    target.reset_calls()
    with pytest.raises(ManifestError, match=r"broken\.yaml"):
        rec(src, target, prune=True).sync()
    assert target.objects() == before
    assert target.counts()["apply"] == target.counts()["write_inventory"] == 0


def test_dry_run_validation_failure_writes_nothing(src: Path, target: MemoryTarget) -> None:
    refusing = target.with_faults(
        FailWhen(lambda call: call.key == DEPLOY_KEY and call.dry_run, transient=False)
    )
    result = Reconciler(DirectorySource(src), refusing).sync()
    assert not result.succeeded
    by_key = {r.change.key: r for r in result.results}
    assert by_key[DEPLOY_KEY].outcome is Outcome.FAILED
    assert "injected" in by_key[DEPLOY_KEY].message
    assert {r.outcome for k, r in by_key.items() if k != DEPLOY_KEY} == {Outcome.SKIPPED}
    assert target.objects() == {} and target.read_inventory("default") is None


def test_partial_failure_is_reported_per_resource(src: Path, target: MemoryTarget) -> None:
    write(src, {"all.yaml": [ns("apps"), cm("one"), cm("two"), deploy("web")]})
    flaky = target.with_faults(
        FailWhen(lambda c: c.key == CM_KEY and c.method == "apply" and not c.dry_run,
                 transient=False)
    )
    result = Reconciler(DirectorySource(src), flaky, prune=True, name="default").sync()
    outcomes = {r.change.key.name: r.outcome for r in result.results}
    # The rest of the wave still goes ahead; only later waves and pruning would wait.
    assert outcomes == {"apps": Outcome.SUCCEEDED, "one": Outcome.FAILED,
                        "two": Outcome.SUCCEEDED, "web": Outcome.SUCCEEDED}
    assert not result.succeeded and len(result.failed) == 1
    stored = target.read_inventory("default")
    # Everything desired is owned (nothing leaks), but the revision did not advance.
    assert stored is not None and len(stored.keys) == 4 and stored.revision == ""
    healed = rec(src, target, prune=True).sync()
    assert healed.succeeded and [r.change.key.name for r in healed.results] == ["one"]


def test_transient_failures_are_retried_with_backoff(src: Path, target: MemoryTarget) -> None:
    delays: list[float] = []
    flaky = target.with_faults(FailNth(1, method="apply", dry_run=False, times=2))
    result = Reconciler(DirectorySource(src), flaky, sleep=delays.append,
                        retry_backoff=0.5).sync()
    assert result.succeeded
    assert result.results[0].attempts == 3
    assert delays == [0.5, 1.0]


def test_retries_are_bounded(src: Path, target: MemoryTarget) -> None:
    flaky = target.with_faults(FailWhen(lambda c: c.key == CM_KEY and not c.dry_run))
    result = Reconciler(DirectorySource(src), flaky, sleep=lambda s: None, retries=2).sync()
    failed = [r for r in result.results if r.outcome is Outcome.FAILED]
    assert [(r.change.key, r.attempts) for r in failed] == [(CM_KEY, 3)]


def test_empty_source_with_prune_is_refused(src: Path, target: MemoryTarget) -> None:
    rec(src, target, prune=True).sync()
    write(src, {})
    with pytest.raises(EmptySourceError, match="allow_empty"):
        rec(src, target, prune=True).plan()
    assert len(target.objects()) == 3
    result = rec(src, target, prune=True, allow_empty=True).sync()
    assert result.succeeded and target.objects() == {}


def test_dry_run_writes_nothing(src: Path, target: MemoryTarget) -> None:
    result = rec(src, target, dry_run=True).sync()
    assert result.dry_run and result.succeeded and not result.in_sync
    assert [r.outcome for r in result.results] == [Outcome.SUCCEEDED] * 3
    assert target.objects() == {} and target.read_inventory("default") is None


def test_plans_are_deterministic(src: Path, target: MemoryTarget) -> None:
    first = rec(src, target).plan()
    second = rec(src, target).plan()
    assert [c.to_dict() for c in first.changes] == [c.to_dict() for c in second.changes]


def test_events_are_emitted(src: Path, target: MemoryTarget) -> None:
    events: list[Event] = []
    Reconciler(DirectorySource(src), target, on_event=events.append).sync()
    reasons = [e.reason for e in events]
    assert reasons[0] == "Planned" and reasons[-1] == "SyncSucceeded"
    assert reasons.count("Created") == 3


def test_wait_for_health_between_waves(src: Path) -> None:
    def controller(obj: dict[str, Any]) -> dict[str, Any] | None:
        if obj["kind"] != "Deployment":
            return None
        if obj["spec"]["template"]["spec"]["containers"][0]["image"] == "broken":
            return {"observedGeneration": obj["metadata"]["generation"], "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}
        n = obj["spec"]["replicas"]
        return {"observedGeneration": obj["metadata"]["generation"], "replicas": n,
                "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n}

    target = MemoryTarget(status_factory=controller)
    result = rec(src, target, wait=True, wait_interval=0.01).sync()
    assert result.succeeded
    assert {r.change.key: r.health for r in result.results}[DEPLOY_KEY] is HealthStatus.HEALTHY
    write(src, {"all.yaml": [ns("apps"), cm("one"), deploy("web", image="broken")]})
    degraded = rec(src, target, wait=True, wait_interval=0.01).sync()
    assert not degraded.succeeded
    assert degraded.failed[0].health is HealthStatus.DEGRADED


def test_run_loop_heals_drift(src: Path, target: MemoryTarget) -> None:
    results: list[gitops.SyncResult] = []

    def drift_after_first(result: gitops.SyncResult) -> None:
        results.append(result)
        if len(results) == 1:
            target.mutate(CM_KEY, lambda o: o["data"].update(k="changed"))

    rec(src, target).run(interval=0, iterations=2, on_result=drift_after_first)
    assert [len(r.results) for r in results] == [3, 1]
    assert target.objects()[CM_KEY]["data"] == {"k": "v"}


def test_run_loop_reports_errors_and_goes_on(tmp_path: Path, target: MemoryTarget) -> None:
    events: list[Event] = []
    (tmp_path / "bad.yaml").write_text("kind: [")
    Reconciler(DirectorySource(tmp_path), target, on_event=events.append).run(
        interval=0, iterations=2)
    assert [e.reason for e in events] == ["ReconcileError", "ReconcileError"]
    assert "bad.yaml" in events[0].message


def test_urls_are_opened_and_closed(src: Path) -> None:
    with Reconciler(str(src), "mock:", name="urls") as r:
        assert isinstance(r.target, MemoryTarget)
        assert r.sync().succeeded


def test_bad_options_are_input_errors(src: Path, target: MemoryTarget) -> None:
    with pytest.raises(InputError, match="name"):
        rec(src, target, name="Not A Label")
    with pytest.raises(InputError, match="retries"):
        rec(src, target, retries=-1)
    with pytest.raises(TypeError, match="unknown_option"):  # a typo is a type error too
        rec(src, target, unknown_option=True)


def test_plan_for_another_inventory_is_refused(src: Path, target: MemoryTarget) -> None:
    plan = rec(src, target, name="a").plan()
    with pytest.raises(InputError, match="inventory 'a'"):
        rec(src, target, name="b").sync(plan)


class NeedsNamespaces(MemoryTarget):
    """A target whose dry run, like Kubernetes', fails until the namespace exists."""

    dry_run_needs_prerequisites = True


def test_objects_in_a_namespace_being_created_validate_at_apply_time(src: Path) -> None:
    target = NeedsNamespaces()
    refusing = target.with_faults(
        FailWhen(lambda call: call.key == DEPLOY_KEY and call.dry_run, transient=False)
    )
    result = Reconciler(DirectorySource(src), refusing).sync()
    assert result.succeeded and DEPLOY_KEY in target.objects()
    dry_runs = [c.key for c in target.calls if c.dry_run]
    assert DEPLOY_KEY not in dry_runs and CM_KEY not in dry_runs


class RefusesDeployments(MemoryTarget):
    """A target that cannot hold Deployments (as a cluster without that API would)."""

    def check(self, resources: Sequence[gitops.Resource]) -> None:
        for res in resources:
            if res.kind == "Deployment":
                raise ManifestError(res.origin, "unknown kind Deployment")


def test_target_check_refuses_before_reading_or_writing(src: Path) -> None:
    target = RefusesDeployments()
    with pytest.raises(ManifestError, match=r"all\.yaml.*unknown kind Deployment"):
        Reconciler(DirectorySource(src), target).sync()
    assert target.calls == [] and target.objects() == {}
