"""The Kubernetes target end to end, over real HTTP against the API emulator.

Each test works in namespaces and inventories of its own, so most share one emulator
(``kube_emulator_session``); tests that count requests reset the counters first.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops import Reconciler
from gitops.cli import main as cli_main
from gitops.errors import ApplyError, ConflictError, ManifestError, UnreachableError
from gitops.model import HealthStatus, Outcome, Resource, ResourceKey

pytest.importorskip("kubernetes")
kube = pytest.importorskip("gitops.testing.kube")

from kube_targets import suffix  # noqa: E402

from gitops.targets.kubernetes import DriftEvent, KubernetesTarget  # noqa: E402
from gitops.targets.kubernetes.applyset import (  # noqa: E402
    GROUP_KINDS_ANNOTATION,
    ID_LABEL,
    PART_OF_LABEL,
    ApplySet,
    applyset_id,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app"
WRITES = ("create", "update", "patch", "delete")
READS = ("get", "list", "watch")
kubectl_missing = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


# -- helpers -------------------------------------------------------------------------------


_suffix = suffix


def write_tree(root: Path, manifests: list[dict[str, Any]]) -> Path:
    """Write manifests, one file each, replacing what ``root`` held."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for index, manifest in enumerate(manifests):
        (root / f"{index:03d}-{manifest['kind'].lower()}.yaml").write_text(yaml.safe_dump(manifest))
    return root


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(name: str, ns: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": data or {"key": "value"}}


def kubectl(emulator: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(emulator.kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=60, check=check)


def writes(counts: Any) -> int:
    return sum(counts.get(verb, 0) for verb in WRITES)


def reads(counts: Any) -> int:
    return sum(counts.get(verb, 0) for verb in READS)


# -- the "done when" ---------------------------------------------------------------


@kubectl_missing
def test_example_app_converges_drift_is_healed_and_a_second_sync_writes_nothing(
    kube_emulator: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_emulator.kubeconfig_path))
    argv = [str(EXAMPLE), "k8s:", "--prune"]
    assert cli_main(["sync", *argv]) == 0, capsys.readouterr().err
    deployment = json.loads(kubectl(kube_emulator, "get", "deployment", "shop", "-n", "shop",
                                    "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    shown = kubectl(kube_emulator, "get", "configmaps,secrets,services", "-n", "shop").stdout
    assert "shop-settings" in shown and "shop-database" in shown and "shop" in shown

    kube_emulator.reset_counts()
    capsys.readouterr()
    assert cli_main(["sync", *argv]) == 0
    assert writes(kube_emulator.counts()) == 0, kube_emulator.counts()

    kubectl(kube_emulator, "patch", "deployment", "shop", "-n", "shop", "--type=merge",
            "-p", '{"spec": {"replicas": 5}}')
    capsys.readouterr()
    assert cli_main(["diff", *argv]) == 1
    assert "replicas" in capsys.readouterr().out
    assert cli_main(["sync", *argv]) == 0
    deployment = json.loads(kubectl(kube_emulator, "get", "deployment", "shop", "-n", "shop",
                                    "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert cli_main(["diff", *argv]) == 0


def test_secret_values_round_trip_without_drift(open_target: Callable[..., KubernetesTarget],
                                                tmp_path: Path) -> None:
    ns = f"secret-{_suffix()}"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
              "type": "Opaque", "stringData": {"url": "postgres://u:pw@db/x"}}
    source = write_tree(tmp_path / "src", [namespace(ns), secret])
    target = open_target()
    with Reconciler(str(source), target, name=f"s-{_suffix()}") as rec:
        assert rec.sync().succeeded
        assert rec.plan().in_sync


def test_prune_removes_only_owned_objects_across_processes(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns, name = f"prune-{_suffix()}", f"p-{_suffix()}"
    first = open_target()
    first.apply(Resource.from_manifest(namespace(ns)))
    first.apply(Resource.from_manifest(configmap("by-hand", ns)))  # nobody's
    manifests = [configmap("keep", ns), configmap("drop", ns)]
    with Reconciler(str(write_tree(tmp_path / "a", manifests)), first, name=name) as rec:
        assert rec.sync().succeeded

    second = open_target()  # another process: knows only what the cluster holds
    with Reconciler(str(write_tree(tmp_path / "b", manifests[:1])), second, name=name,
                    prune=True) as rec:
        plan = rec.plan()
        assert [(c.action.value, c.key.name) for c in plan.changes] == [("delete", "drop")]
        assert rec.sync(plan).succeeded
    keys = [ResourceKey("", "ConfigMap", ns, n) for n in ("keep", "drop", "by-hand")]
    assert sorted(k.name for k in second.live(keys)) == ["by-hand", "keep"]


def test_crd_and_its_custom_resources_converge_in_one_sync(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    group, ns = f"{_suffix()}.example.com", f"crd-{_suffix()}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}],
        },
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
              "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 3}}
    source = write_tree(tmp_path / "src", [crd, namespace(ns), widget])
    target = open_target()
    with Reconciler(str(source), target, name=f"c-{_suffix()}", prune=True) as rec:
        result = rec.sync()
        assert result.succeeded, [(r.change.key, r.message) for r in result.failed]
        assert rec.plan().in_sync
        assert target.is_namespaced(group, "Widget") is True


# -- bad input -----------------------------------------------------------------------------


def test_unknown_kind_is_a_plan_error_before_any_write(
    emulator: Any, open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns = f"unknown-{_suffix()}"
    target = open_target()
    target.apply(Resource.from_manifest(namespace(ns)))
    gadget = {"apiVersion": "nowhere.example.com/v1", "kind": "Gadget",
              "metadata": {"name": "g", "namespace": ns}}
    source = write_tree(tmp_path / "src", [configmap("cm", ns), gadget])
    emulator.reset_counts()
    with Reconciler(str(source), target, name=f"u-{_suffix()}") as rec, pytest.raises(
        ManifestError, match=r"001-gadget\.yaml.*unknown kind Gadget in nowhere\.example\.com/v1"
    ):
        rec.plan()
    writes = sum(emulator.counts()[v] for v in ("create", "update", "patch", "delete"))
    assert writes == 0
    assert target.live([ResourceKey("", "ConfigMap", ns, "cm")]) == {}, "half-applied"


def test_rejected_object_names_it_with_the_servers_message(
    open_target: Callable[..., KubernetesTarget]
) -> None:
    ns = f"invalid-{_suffix()}"
    target = open_target()
    target.apply(Resource.from_manifest(namespace(ns)))
    bad = configmap("bad", ns)
    bad["data"] = {"not a valid key!": "x"}
    with pytest.raises(ApplyError) as caught:
        target.apply(Resource.from_manifest(bad), dry_run=True)
    assert f"ConfigMap/{ns}/bad" in str(caught.value)
    assert "bad" in caught.value.reason and "rejected by the API server" in caught.value.reason


def test_rejected_secret_never_shows_its_values(
    open_target: Callable[..., KubernetesTarget]
) -> None:
    ns = f"invalid-{_suffix()}"
    target = open_target()
    target.apply(Resource.from_manifest(namespace(ns)))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
              "stringData": {"bad key!": "hunter2-password"}}
    with pytest.raises(ApplyError) as caught:
        target.apply(Resource.from_manifest(secret))
    assert "hunter2-password" not in str(caught.value)


def web_deployment(ns: str, env: dict[str, str], args: list[str] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.25",
                                 "env": [{"name": k, "value": v} for k, v in env.items()]}
    if args is not None:
        container["args"] = args
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [container]}}}}


@pytest.mark.parametrize("watch", [False, True], ids=["list", "watch-cache"])
def test_fields_removed_from_the_source_are_removed_from_the_cluster(
    emulator: Any, open_target: Callable[..., KubernetesTarget], tmp_path: Path, watch: bool
) -> None:
    ns, name = f"removal-{_suffix()}", f"r-{_suffix()}"
    settings = configmap("settings", ns, a="1", b="2")
    settings["metadata"]["labels"] = {"app": "web", "tier": "front"}
    web = web_deployment(ns, {"A": "1", "B": "2"}, ["--verbose"])
    source = write_tree(tmp_path / "src", [namespace(ns), settings, web])
    target = open_target(watch=watch)
    with Reconciler(str(source), target, name=name) as rec:
        assert rec.sync().succeeded
        assert rec.plan().in_sync  # defaults and the server's fields are not drift

        # someone else labels both objects (kubectl label): theirs, not drift
        for path in (f"/api/v1/namespaces/{ns}/configmaps/settings",
                     f"/apis/apps/v1/namespaces/{ns}/deployments/web"):
            code, body = emulator.request("PATCH", f"{path}?fieldManager=kubectl-label",
                                          {"metadata": {"labels": {"team": "x"}}},
                                          content_type="application/merge-patch+json")
            assert code == 200, body
        if watch:
            time.sleep(0.3)  # let the cache see it
        assert rec.plan().in_sync

        del settings["data"]["b"], settings["metadata"]["labels"]["tier"]
        write_tree(source, [namespace(ns), settings, web_deployment(ns, {"A": "1"}, None)])
        plan = rec.plan()
        assert sorted(c.key.kind for c in plan.changes) == ["ConfigMap", "Deployment"]
        removed = {c.key.kind: [op["path"] for op in c.diff.patch if op["op"] == "remove"]
                   for c in plan.changes if c.diff is not None}
        assert sorted(removed["ConfigMap"]) == ["/data/b", "/metadata/labels/tier"]
        assert "/spec/template/spec/containers/0/args" in removed["Deployment"]
        assert rec.sync(plan).succeeded

        [stored] = [o for o in emulator.objects(kind="ConfigMap", namespace=ns)
                    if o["metadata"]["name"] == "settings"]
        assert stored["data"] == {"a": "1"}
        labels = stored["metadata"]["labels"]
        assert "tier" not in labels and labels["app"] == "web" and labels["team"] == "x"
        [deployed] = emulator.objects(kind="Deployment", namespace=ns)
        assert set(deployed["metadata"]["labels"]) == {"team", PART_OF_LABEL}
        [container] = deployed["spec"]["template"]["spec"]["containers"]
        assert "args" not in container and container["env"] == [{"name": "A", "value": "1"}]

        if watch:
            time.sleep(0.3)
        emulator.reset_counts()
        again = rec.sync()
        assert again.succeeded and again.results == ()
        assert writes(emulator.counts()) == 0, emulator.counts()


def test_a_field_someone_else_took_over_is_theirs_to_keep(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    """A field another manager changed with force is no longer ours: removing it from the
    source leaves it, as server-side apply does."""
    ns, name = f"taken-{_suffix()}", f"t-{_suffix()}"
    source = write_tree(tmp_path / "src", [namespace(ns), configmap("cm", ns, a="1", b="2")])
    with Reconciler(str(source), open_target(), name=name) as rec:
        assert rec.sync().succeeded
        open_target(field_manager="kubectl-edit").apply(
            Resource.from_manifest(configmap("cm", ns, b="theirs")))
        write_tree(source, [namespace(ns), configmap("cm", ns, a="1")])
        assert rec.plan().in_sync
        live = rec.target.live([ResourceKey("", "ConfigMap", ns, "cm")])
        assert next(iter(live.values())).manifest["data"] == {"a": "1", "b": "theirs"}


def test_field_manager_conflicts_are_forced_by_default_or_reported(
    open_target: Callable[..., KubernetesTarget]
) -> None:
    ns = f"conflict-{_suffix()}"
    ours, theirs = open_target(), open_target(field_manager="someone-else")
    ours.apply(Resource.from_manifest(namespace(ns)))
    ours.apply(Resource.from_manifest(configmap("shared", ns, key="ours")))
    theirs.apply(Resource.from_manifest(configmap("shared", ns, key="theirs")))

    careful = open_target(force=False)
    with pytest.raises(ConflictError, match="someone-else"):
        careful.apply(Resource.from_manifest(configmap("shared", ns, key="ours")))
    ours.apply(Resource.from_manifest(configmap("shared", ns, key="ours")))
    live = ours.live([ResourceKey("", "ConfigMap", ns, "shared")])
    assert next(iter(live.values())).manifest["data"] == {"key": "ours"}


def test_an_object_owned_by_another_inventory_is_not_adopted_unless_asked(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns = f"owned-{_suffix()}"
    source = write_tree(tmp_path / "src", [namespace(ns), configmap("cm", ns)])
    with Reconciler(str(source), open_target(), name=f"a-{_suffix()}") as first:
        assert first.sync().succeeded
    target = open_target()
    with Reconciler(str(source), target, name=f"b-{_suffix()}") as second, \
            pytest.raises(ConflictError, match=r"owned by another inventory.*adopt"):
        second.sync()
    with Reconciler(str(source), open_target(adopt=True), name=f"b-{_suffix()}") as third:
        assert third.sync().succeeded


def test_missing_namespace_is_an_error_or_created_on_request(
    open_target: Callable[..., KubernetesTarget]
) -> None:
    ns = f"missing-{_suffix()}"
    manifest = Resource.from_manifest(configmap("cm", ns))
    with pytest.raises(ApplyError, match=f"namespace '{ns}' does not exist"):
        open_target().apply(manifest, dry_run=True)
    creating = open_target(create_namespaces=True)
    assert creating.apply(manifest, dry_run=True) is manifest  # cannot validate yet
    creating.apply(manifest)
    assert set(creating.live([manifest.key])) == {manifest.key}


def test_unreachable_api_server_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
    }))
    target = KubernetesTarget("k8s://dead", kubeconfig=str(kubeconfig), retries=1,
                              sleep=lambda _s: None)
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{port}.*unreachable") as caught:
        target.read_inventory("x")
    assert "t0ken" not in str(caught.value)
    target.close()


# -- the ApplySet --------------------------------------------------------------------------


@kubectl_missing
def test_inventory_is_an_applyset_kubectl_can_read(
    emulator: Any, open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns, name = f"applyset-{_suffix()}", f"i-{_suffix()}"
    source = write_tree(tmp_path / "src", [namespace(ns), configmap("cm", ns)])
    with Reconciler(str(source), open_target(), name=name) as rec:
        assert rec.sync().succeeded
    applyset = ApplySet(name, "gitops-system")
    parent = json.loads(kubectl(emulator, "get", "configmap", applyset.name, "-n",
                                "gitops-system", "-o", "json").stdout)
    assert parent["metadata"]["labels"][ID_LABEL] == applyset.id
    assert parent["metadata"]["annotations"][GROUP_KINDS_ANNOTATION] == "ConfigMap,Namespace"
    members = kubectl(emulator, "get", "configmaps,namespaces", "-A", "-l",
                      f"{PART_OF_LABEL}={applyset.id}", "-o", "name").stdout.split()
    assert sorted(members) == ["configmap/cm", f"namespace/{ns}"]


@kubectl_missing
def test_kubectl_computes_the_same_applyset_id(
    emulator: Any, open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns, parent = f"kubectl-{_suffix()}", f"parent-{_suffix()}"
    open_target().apply(Resource.from_manifest(namespace(ns)))
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(yaml.safe_dump(configmap("cm", ns)))
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(emulator.kubeconfig_path), "apply", "-n", ns,
         "--server-side", "--prune", f"--applyset=configmap/{parent}", "-f", str(manifest)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KUBECTL_APPLYSET": "true"},
    )
    if done.returncode != 0:
        pytest.skip(f"this kubectl cannot manage ApplySets: {done.stderr.strip()[:200]}")
    labels = json.loads(kubectl(emulator, "get", "configmap", parent, "-n", ns, "-o",
                                "json").stdout)["metadata"]["labels"]
    assert labels[ID_LABEL] == applyset_id(parent, ns)


# -- request budget ------------------------------------------------------------------------


def test_cold_plan_lists_once_per_kind_and_namespace(
    emulator: Any, open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns1, ns2, name = f"budget-{_suffix()}", f"budget-{_suffix()}", f"b-{_suffix()}"
    manifests = [namespace(ns1), namespace(ns2)]
    for ns in (ns1, ns2):
        manifests += [configmap(f"cm-{i}", ns) for i in range(20)]
        manifests += [{"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": f"sa-{i}", "namespace": ns}} for i in range(5)]
    source = write_tree(tmp_path / "src", manifests)
    with Reconciler(str(source), open_target(), name=name) as rec:
        assert rec.sync().succeeded

    target = open_target()
    emulator.reset_counts()
    with Reconciler(str(source), target, name=name) as rec:
        assert rec.plan().in_sync
    counts = emulator.counts()
    # 1 list of Namespaces + 2 kinds x 2 namespaces; 1 GET of the inventory; no GET per object
    assert counts.get("list", 0) <= 5, counts
    assert counts.get("get", 0) <= 1, counts
    assert writes(counts) == 0, counts
    assert target.stats()["list"] <= 5


def test_warm_watch_cache_reads_nothing_and_reports_drift(
    emulator: Any, open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns, name = f"watch-{_suffix()}", f"w-{_suffix()}"
    source = write_tree(tmp_path / "src", [namespace(ns), configmap("a", ns), configmap("b", ns)])
    target = open_target(watch=True)
    events: list[DriftEvent] = []
    seen = threading.Event()

    def on_drift(event: DriftEvent) -> None:
        events.append(event)
        seen.set()

    target.watch(on_drift)
    with Reconciler(str(source), target, name=name) as rec:
        assert rec.sync().succeeded
        assert rec.plan().in_sync  # warms the cache (the sync's own writes are not drift)
        time.sleep(0.3)
        assert not events, events
        emulator.reset_counts()
        assert rec.plan().in_sync
        assert reads(emulator.counts()) == 0, emulator.counts()

        other = open_target(field_manager="kubectl-edit")
        other.apply(Resource.from_manifest(configmap("a", ns, key="drifted")))
        assert seen.wait(10), "no drift event"
        assert events[0].key == ResourceKey("", "ConfigMap", ns, "a")
        plan = rec.plan()
        assert [c.key.name for c in plan.changes] == ["a"]


def test_run_loop_heals_drift_as_soon_as_the_watch_sees_it(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns, name = f"run-{_suffix()}", f"r-{_suffix()}"
    source = write_tree(tmp_path / "src", [namespace(ns), configmap("a", ns)])
    target = open_target()
    results: list[Any] = []
    stop = threading.Event()
    with Reconciler(str(source), target, name=name) as rec:
        loop = threading.Thread(target=rec.run, kwargs={
            "interval": 300, "stop": stop, "on_result": results.append})
        loop.start()
        try:
            deadline = time.monotonic() + 10
            while not results and time.monotonic() < deadline:
                time.sleep(0.05)
            assert results and results[0].succeeded
            time.sleep(0.3)  # let the watch establish
            open_target(field_manager="kubectl-edit").apply(
                Resource.from_manifest(configmap("a", ns, key="drifted")))
            while len(results) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(results) >= 2, "drift did not wake the run loop"
            live = target.live([ResourceKey("", "ConfigMap", ns, "a")])
            assert next(iter(live.values())).manifest["data"] == {"key": "value"}
        finally:
            stop.set()
            loop.join(10)


# -- health --------------------------------------------------------------------------------


def test_health_of_live_objects(open_target: Callable[..., KubernetesTarget]) -> None:
    ns = f"health-{_suffix()}"
    target = open_target()
    ns_resource = target.apply(Resource.from_manifest(namespace(ns)))
    assert target.health(ns_resource) is HealthStatus.HEALTHY
    absent = Resource.from_manifest(configmap("absent", ns))
    assert target.health(absent) is HealthStatus.MISSING
    cm = target.apply(Resource.from_manifest(configmap("cm", ns)))
    assert target.health(cm) is HealthStatus.HEALTHY


def test_sync_waits_for_workloads_to_be_healthy(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns = f"wait-{_suffix()}"
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    }
    source = write_tree(tmp_path / "src", [namespace(ns), deployment])
    with Reconciler(str(source), open_target(), name=f"h-{_suffix()}", wait=True,
                    wait_timeout=20, wait_interval=0.1) as rec:
        result = rec.sync()
    assert result.succeeded, [(r.change.key, r.message) for r in result.failed]
    assert {r.health for r in result.results} == {HealthStatus.HEALTHY}


def test_delete_honours_dry_run_and_reports_absence(
    open_target: Callable[..., KubernetesTarget]
) -> None:
    ns = f"delete-{_suffix()}"
    target = open_target(propagation_policy="Foreground")
    target.apply(Resource.from_manifest(namespace(ns)))
    cm = target.apply(Resource.from_manifest(configmap("cm", ns)))
    assert target.delete(cm.key, dry_run=True) is True
    assert set(target.live([cm.key])) == {cm.key}
    assert target.delete(cm.key) is True
    assert target.delete(cm.key) is False
    assert target.live([cm.key]) == {}


def test_sync_results_name_failures_per_resource(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns = f"results-{_suffix()}"
    bad = configmap("bad", ns)
    bad["data"] = {"not valid!": "x"}
    source = write_tree(tmp_path / "src", [namespace(ns), configmap("good", ns), bad])
    with Reconciler(str(source), open_target(), name=f"x-{_suffix()}") as rec:
        result = rec.sync()
    outcome = {r.change.key.name: r.outcome for r in result.results}
    # the namespace is created by this sync: objects in it are validated when applied
    assert outcome[ns] is Outcome.SUCCEEDED and outcome["bad"] is Outcome.FAILED
