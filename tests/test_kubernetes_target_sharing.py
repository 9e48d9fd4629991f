"""Targets of one kubeconfig context share one cluster connection, and nothing per inventory.

``gitops controller`` opens a ``k8s:`` target per application; these tests check, against
the API emulator, that such targets share the connection pool, discovery and one watch
per kind (:mod:`gitops.targets.kubernetes.shared`), while each keeps its own inventory,
drift events, own writes and request counts, and that the last one closed stops it all.
Each test gets a fresh emulator, so request counts are its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from gitops import Reconciler
from gitops.model import Resource, ResourceKey

pytest.importorskip("kubernetes")
kube = pytest.importorskip("gitops.testing.kube")

from operator_support import wait_for  # noqa: E402
from test_kubernetes_target import configmap, namespace, write_tree  # noqa: E402

from gitops.targets.kubernetes import DriftEvent, KubernetesTarget  # noqa: E402
from gitops.targets.kubernetes.shared import open_clusters  # noqa: E402

Opener = Callable[..., KubernetesTarget]


@pytest.fixture
def emulator() -> Iterator[Any]:
    with kube.KubeEmulator() as fresh:
        yield fresh


@pytest.fixture
def open_target(emulator: Any) -> Iterator[Opener]:
    opened: list[KubernetesTarget] = []

    def make(**options: Any) -> KubernetesTarget:
        target = KubernetesTarget("k8s:", kubeconfig=str(emulator.kubeconfig_path), **options)
        opened.append(target)
        return target

    yield make
    for target in opened:
        target.close()


def clusters_of(emulator: Any) -> list[Any]:
    return [c for c in open_clusters() if c.client.server == emulator.url]


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gitops-watch")]


class Recorder:
    """A drift handler that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[DriftEvent] = []
        self.seen = threading.Event()

    def __call__(self, event: DriftEvent) -> None:
        self.events.append(event)
        self.seen.set()

    def keys(self) -> set[ResourceKey]:
        return {e.key for e in self.events}


def app(tmp_path: Path, name: str, ns: str, *names: str) -> Path:
    return write_tree(tmp_path / name, [namespace(ns), *(configmap(n, ns) for n in names)])


def test_targets_of_one_context_share_one_connection_until_the_last_closes(
    emulator: Any, tmp_path: Path
) -> None:
    kubeconfig = str(emulator.kubeconfig_path)
    others = set(watch_threads())  # other tests' targets may still be open
    first = KubernetesTarget("k8s:", kubeconfig=kubeconfig, watch=True)
    second = KubernetesTarget("k8s:", kubeconfig=kubeconfig, watch=True)
    other_options = KubernetesTarget("k8s:", kubeconfig=kubeconfig, timeout=7)
    try:
        assert first.client.api_client is second.client.api_client  # one pool
        assert first.client is not second.client  # counts and limits stay per target
        assert first.discovery.shared is second.discovery.shared
        assert other_options.client.api_client is not first.client.api_client
        assert len(clusters_of(emulator)) == 2
        with Reconciler(str(app(tmp_path, "a", "share-a", "cm")), first, name="a") as rec:
            assert rec.sync().succeeded and rec.plan().in_sync
        assert set(watch_threads()) - others
        first.close()
        first.close()  # idempotent: the second target still holds the connection
        with Reconciler(str(app(tmp_path, "b", "share-b", "cm")), second, name="b") as rec:
            assert rec.sync().succeeded and rec.plan().in_sync
    finally:
        second.close()
        other_options.close()
    assert clusters_of(emulator) == []
    wait_for(lambda: not set(watch_threads()) - others, 10, "the shared watches to stop")


def test_a_kubeconfig_changed_on_disk_is_read_again_by_targets_opened_after(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    before = open_target()
    path = Path(emulator.kubeconfig_path)
    path.write_text(path.read_text() + "\n")  # same settings, a new version of the file
    after = open_target()
    assert after.client.api_client is not before.client.api_client
    assert after.read_inventory("nothing") is None


def test_one_watch_per_kind_whatever_the_number_of_inventories(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    for index in range(3):
        target = open_target(watch=True)
        source = app(tmp_path, f"app{index}", f"kinds-{index}", "one", "two")
        with Reconciler(str(source), target, name=f"app{index}") as rec:
            assert rec.sync().succeeded
            assert rec.plan().in_sync
    watches = {resource: n for (verb, resource), n in emulator.counts_by_resource().items()
               if verb == "watch"}
    # members: ConfigMaps and Namespaces; parents: ConfigMaps of the inventory namespace
    assert watches == {"/configmaps": 2, "/namespaces": 1}, watches
    emulator.reset_counts()
    for index in range(3):
        target = open_target(watch=True)
        with Reconciler(str(tmp_path / f"app{index}"), target, name=f"app{index}") as rec:
            assert rec.plan().in_sync
    counts = emulator.counts()
    # new targets read every member from the warm shared stores: no LIST, no WATCH
    assert counts.get("list", 0) == 0 and counts.get("watch", 0) == 0, counts


def test_drift_is_told_to_the_inventory_it_belongs_to_only(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    mine, theirs = open_target(watch=True), open_target(watch=True)
    told_mine, told_theirs = Recorder(), Recorder()
    mine.watch(told_mine)
    theirs.watch(told_theirs)
    with (Reconciler(str(app(tmp_path, "mine", "drift-mine", "a")), mine, name="mine") as r1,
          Reconciler(str(app(tmp_path, "theirs", "drift-theirs", "b")), theirs,
                     name="theirs") as r2):
        for rec in (r1, r2):
            assert rec.sync().succeeded and rec.plan().in_sync
        time.sleep(0.3)
        assert told_mine.events == [] and told_theirs.events == []  # own writes: not drift

        editor = open_target(field_manager="kubectl-edit")  # same process, same cluster
        editor.apply(Resource.from_manifest(configmap("a", "drift-mine", key="edited")))
        assert told_mine.seen.wait(10), "no drift event"
        assert told_mine.keys() == {ResourceKey("", "ConfigMap", "drift-mine", "a")}
        time.sleep(0.3)
        assert told_theirs.events == []
        assert [c.key.name for c in r1.plan().changes] == ["a"]
        assert r2.plan().in_sync


def test_a_write_by_another_target_of_the_process_is_drift_at_once(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    """The writer records its write in the shared store before the watch event comes:
    the other readers of that object are told then, not left with "no change"."""
    owner, writer = open_target(watch=True), open_target(watch=True)
    told = Recorder()
    owner.watch(told)
    source = app(tmp_path, "owned", "told-at-once", "a")
    with Reconciler(str(source), owner, name="owned") as rec:
        assert rec.sync().succeeded and rec.plan().in_sync
        with Reconciler(str(source), writer, name="owned") as same_inventory:
            assert same_inventory.plan().in_sync
            writer.apply(Resource.from_manifest(
                owner.own(Resource.from_manifest(configmap("a", "told-at-once", key="x")),
                          "owned").manifest))
        assert told.seen.wait(10), "the owner was not told"
        assert told.keys() == {ResourceKey("", "ConfigMap", "told-at-once", "a")}
        assert [c.key.name for c in rec.plan().changes] == ["a"]


def test_each_target_counts_its_own_requests(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    first, second = open_target(), open_target()
    assert first.is_namespaced("", "ConfigMap") is True
    assert first.stats().get("discovery", 0) >= 1
    assert second.is_namespaced("", "ConfigMap") is True  # answered from the shared cache
    assert second.stats() == {}
    assert second.read_inventory("nothing-here") is None
    assert second.stats() == {"get": 1}


def test_a_kind_installed_after_another_target_looked_is_seen_by_a_new_target(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    early = open_target()
    assert early.is_namespaced("late.example.com", "Widget") is None  # not served yet
    emulator.expect_ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.late.example.com"},
        "spec": {"group": "late.example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]},
    })
    late = open_target()
    assert late.is_namespaced("late.example.com", "Widget") is True


def test_a_cold_read_in_a_namespace_that_does_not_exist_lists_only_the_namespace(
    emulator: Any, tmp_path: Path, open_target: Opener
) -> None:
    source = app(tmp_path, "fresh", "not-there-yet", "a", "b")
    emulator.reset_counts()
    with Reconciler(str(source), open_target(), name="fresh") as rec:
        plan = rec.plan()
    assert len(plan.changes) == 3
    lists = {resource: n for (verb, resource), n in emulator.counts_by_resource().items()
             if verb == "list"}
    assert lists == {"/namespaces": 1}, lists
    queries = [unquote(query) for method, path, query in emulator.requests
               if (method, path) == ("GET", "/api/v1/namespaces")]
    assert queries == ["fieldSelector=metadata.name=not-there-yet"], queries
