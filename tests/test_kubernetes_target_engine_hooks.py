"""The engine hooks the Kubernetes target relies on, proven with the in-memory target:
``Target.own`` (mark desired objects before the diff), drift events waking ``run()``, and a
``--dry-run`` that skips objects whose Namespace or CRD the same sync creates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import yaml

from gitops import Outcome, Reconciler, Resource, ResourceKey, SyncResult
from gitops.testing import MemoryTarget

LABEL = "example.com/owner"


def _source(root: Path, manifests: list[dict[str, Any]]) -> str:
    root.mkdir(exist_ok=True)
    (root / "all.yaml").write_text(yaml.safe_dump_all(manifests))
    return str(root)


def _configmap(name: str, ns: str = "app") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"k": "v"}}


class Labelling(MemoryTarget):
    """Marks what an inventory owns with a label, as the Kubernetes target does."""

    def own(self, resource: Resource, inventory: str) -> Resource:
        metadata = dict(resource.manifest["metadata"])
        metadata["labels"] = {**(metadata.get("labels") or {}), LABEL: inventory}
        return Resource(resource.key, resource.api_version,
                        {**resource.manifest, "metadata": metadata}, resource.origin)


def test_own_marks_desired_objects_and_adopts_unmarked_ones(tmp_path: Path) -> None:
    target = Labelling()
    target.put(_configmap("existing"))  # made by hand, identical but for the label
    with Reconciler(_source(tmp_path / "src", [_configmap("existing")]), target,
                    name="team") as rec:
        plan = rec.plan()
        assert [(c.action.value, c.key.name) for c in plan.changes] == [("update", "existing")]
        assert LABEL in (plan.changes[0].diff.text if plan.changes[0].diff else "")
        assert rec.sync(plan).succeeded
        assert rec.plan().in_sync
    stored = target.objects()[ResourceKey("", "ConfigMap", "app", "existing")]
    assert stored["metadata"]["labels"] == {LABEL: "team"}


class Watching(MemoryTarget):
    """A target that reports drift through ``watch(handler)``."""

    supports_watch: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.handlers: list[Callable[[object], None]] = []

    def watch(self, handler: Callable[[object], None]) -> Callable[[], None]:
        self.handlers.append(handler)
        return lambda: self.handlers.remove(handler)


def test_drift_events_wake_the_run_loop(tmp_path: Path) -> None:
    target = Watching()
    results: list[SyncResult] = []
    stop = threading.Event()
    events: list[str] = []
    with Reconciler(_source(tmp_path / "src", [_configmap("a")]), target,
                    on_event=lambda e: events.append(e.reason)) as rec:
        loop = threading.Thread(target=rec.run, kwargs={
            "interval": 300, "stop": stop, "on_result": results.append})
        loop.start()
        deadline = time.monotonic() + 5
        while not results and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(target.handlers) == 1
        target.mutate(ResourceKey("", "ConfigMap", "app", "a"),
                      lambda m: m["data"].update(k="drifted"))
        target.handlers[0](object())
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        loop.join(5)
    assert len(results) >= 2 and "DriftDetected" in events
    assert target.objects()[ResourceKey("", "ConfigMap", "app", "a")]["data"] == {"k": "v"}
    assert target.handlers == [], "run() must unsubscribe when it ends"


class NeedsPrerequisites(MemoryTarget):
    """A dry run fails in a namespace that does not exist, as on Kubernetes."""

    dry_run_needs_prerequisites: ClassVar[bool] = True

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        namespace = ResourceKey("", "Namespace", "", resource.key.namespace)
        if dry_run and resource.key.namespace and namespace not in self.objects():
            raise AssertionError("dry run of an object whose namespace does not exist yet")
        return super().apply(resource, dry_run=dry_run)


def test_a_dry_run_sync_skips_objects_whose_namespace_it_creates(tmp_path: Path) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}
    target = NeedsPrerequisites()
    with Reconciler(_source(tmp_path / "src", [namespace, _configmap("a")]), target,
                    dry_run=True) as rec:
        result = rec.sync()
    outcomes = {r.change.key.kind: r for r in result.results}
    assert outcomes["Namespace"].outcome is Outcome.SUCCEEDED
    assert outcomes["ConfigMap"].outcome is Outcome.SKIPPED
    assert "validated when applied" in outcomes["ConfigMap"].message
    assert result.succeeded and target.objects() == {}
