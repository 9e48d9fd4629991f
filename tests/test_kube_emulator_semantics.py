"""The emulator's deeper semantics: server-side apply, CRDs, deletion, finalizers, watch."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import pytest
import yaml

from gitops.testing.kube import KubeEmulator

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def call(emu: KubeEmulator, method: str, path: str, body: Any = None, *,
         content_type: str = "application/json") -> tuple[int, Any]:
    return emu.request(method, path, body, content_type=content_type)


def ok(emu: KubeEmulator, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    code, out = call(emu, method, path, body, **kwargs)
    assert code in (200, 201), (code, out)
    return out


def configmap(name: str, namespace: str = "default", labels: dict[str, str] | None = None,
              data: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name: str, image: str = "nginx:1.25", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }


@pytest.fixture
def emu(kube_emulator: KubeEmulator) -> KubeEmulator:
    return kube_emulator


def apply(emu: KubeEmulator, path: str, obj: dict[str, Any], manager: str = "gitops", *, force: bool = False,
          expect: int | None = None) -> Any:
    query = f"?fieldManager={manager}" + ("&force=true" if force else "")
    code, body = call(emu, "PATCH", path + query, yaml.safe_dump(obj), content_type=APPLY)
    if expect is not None:
        assert code == expect, body
    else:
        assert code in (200, 201), body
    return body


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["manager"], m["operation"]): m["fieldsV1"] for m in obj["metadata"].get("managedFields", [])}


def namespace(emu: KubeEmulator, name: str) -> None:
    ok(emu, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


# -- server-side apply ----------------------------------------------------------------------------


def test_apply_creates_then_is_a_no_op(emu: KubeEmulator) -> None:
    created = apply(emu, f"{CM}/a", configmap("a", labels={"app": "x"}), expect=201)
    assert managers(created) == {("gitops", "Apply"): {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}}
    entry = created["metadata"]["managedFields"][0]
    assert entry["apiVersion"] == "v1" and entry["fieldsType"] == "FieldsV1" and entry["time"].endswith("Z")
    again = apply(emu, f"{CM}/a", configmap("a", labels={"app": "x"}), expect=200)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_apply_removes_fields_it_no_longer_applies(emu: KubeEmulator) -> None:
    apply(emu, f"{CM}/a", configmap("a", labels={"app": "x", "old": "y"}, data={"k": "v", "gone": "1"}))
    ok(emu, "PATCH", f"{CM}/a", {"metadata": {"annotations": {"kept": "by-other"}}}, content_type=MERGE)
    out = apply(emu, f"{CM}/a", configmap("a", labels={"app": "x"}))
    assert out["metadata"]["labels"] == {"app": "x"} and out["data"] == {"k": "v"}
    assert out["metadata"]["annotations"] == {"kept": "by-other"}  # another manager's field stays


def test_apply_conflicts_with_another_manager(emu: KubeEmulator) -> None:
    apply(emu, DEPLOY + "/web", deployment("web", replicas=2), manager="gitops")
    ok(emu, "PATCH", f"{DEPLOY}/web?fieldManager=kubectl-edit", {"spec": {"replicas": 5}}, content_type=MERGE)
    code, body = call(emu, "PATCH", f"{DEPLOY}/web?fieldManager=gitops", yaml.safe_dump(deployment("web", replicas=2)),
                      content_type=APPLY)
    assert code == 409
    assert body["kind"] == "Status" and body["reason"] == "Conflict" and body["status"] == "Failure"
    assert body["message"].startswith('Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1 at ')
    assert body["message"].endswith(": .spec.replicas")
    [cause] = body["details"]["causes"]
    assert cause["reason"] == "FieldManagerConflict" and cause["field"] == ".spec.replicas"
    assert cause["message"].startswith('conflict with "kubectl-edit" using apps/v1')
    # same value: shared ownership, no conflict
    apply(emu, DEPLOY + "/web", deployment("web", replicas=5), manager="other")
    forced = apply(emu, DEPLOY + "/web", deployment("web", replicas=2), manager="gitops", force=True)
    assert forced["spec"]["replicas"] == 2
    owners = managers(forced)
    assert "f:replicas" in owners[("gitops", "Apply")]["f:spec"]
    assert ("kubectl-edit", "Update") not in owners  # it owned nothing else, so its entry is gone
    assert "f:replicas" not in owners.get(("other", "Apply"), {}).get("f:spec", {})


def test_apply_conflict_lists_every_field_and_item(emu: KubeEmulator) -> None:
    apply(emu, DEPLOY + "/web", deployment("web"), manager="a")
    code, body = call(emu, "PATCH", f"{DEPLOY}/web?fieldManager=b",
                      yaml.safe_dump(deployment("web", image="other:1", replicas=3)), content_type=APPLY)
    assert code == 409
    assert body["message"] == ('Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n'
                               '- .spec.template.spec.containers[name="app"].image')


def test_apply_merges_lists_by_key(emu: KubeEmulator) -> None:
    dep = deployment("web")
    dep["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    apply(emu, DEPLOY + "/web", dep, manager="a")
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}}
    out = apply(emu, DEPLOY + "/web", sidecar, manager="b")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["app", "sidecar"]
    fields = managers(out)[("a", "Apply")]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert 'k:{"name":"app"}' in fields
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in fields['k:{"name":"app"}']["f:ports"]
    out = apply(emu, DEPLOY + "/web", {**sidecar, "spec": {"template": {"spec": {"containers": []}}}}, manager="b")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_apply_requires_a_field_manager_and_matching_names(emu: KubeEmulator) -> None:
    code, body = call(emu, "PATCH", f"{CM}/a", yaml.safe_dump(configmap("a")), content_type=APPLY)
    assert code == 422 and body["details"]["causes"][0]["field"] == "fieldManager"
    code, body = call(emu, "PATCH", f"{CM}/a?fieldManager=x", yaml.safe_dump(configmap("b")), content_type=APPLY)
    assert code == 400 and "does not match the name on the URL" in body["message"]
    code, _ = call(emu, "PATCH", f"{CM}/a?fieldManager=x&force=true", {"data": {}}, content_type=MERGE)
    assert code == 422


def test_update_operations_are_tracked_in_managed_fields(emu: KubeEmulator) -> None:
    created = ok(emu, "POST", f"{CM}?fieldManager=creator", configmap("a"))
    assert managers(created) == {("creator", "Update"): {"f:data": {".": {}, "f:k": {}}}}
    patched = ok(emu, "PATCH", f"{CM}/a?fieldManager=editor", {"data": {"k": "w", "new": "1"}}, content_type=MERGE)
    assert managers(patched)[("editor", "Update")] == {"f:data": {"f:k": {}, "f:new": {}}}
    ua = ok(emu, "PATCH", f"{CM}/a", {"metadata": {"labels": {"x": "1"}}}, content_type=MERGE)
    assert ("kube-emulator-request", "Update") in managers(ua)  # the default manager comes from the User-Agent
    cleared = ok(emu, "PATCH", f"{CM}/a", {"metadata": {"managedFields": [{}]}}, content_type=MERGE)
    assert "managedFields" not in cleared["metadata"]


def test_custom_resources_use_the_crd_list_types(emu: KubeEmulator) -> None:
    crd = widget_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["items"] = {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
        "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "string"}}}}
    ok(emu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    path = "/apis/example.com/v1/namespaces/default/widgets/w"
    base = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    apply(emu, path, {**base, "spec": {"items": [{"id": "a", "v": "1"}]}}, manager="one")
    out = apply(emu, path, {**base, "spec": {"items": [{"id": "b", "v": "2"}]}}, manager="two")
    assert out["spec"]["items"] == [{"id": "a", "v": "1"}, {"id": "b", "v": "2"}]


# -- CRDs -------------------------------------------------------------------------------------------


def widget_crd(scope: str = "Namespaced") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": scope,
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                                   "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
    }


def test_crd_adds_its_kind_to_discovery(emu: KubeEmulator) -> None:
    assert call(emu, "GET", "/apis/example.com/v1")[0] == 404
    crd = ok(emu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd())
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "Widget" and crd["status"]["storedVersions"] == ["v1"]
    groups = {g["name"]: g for g in ok(emu, "GET", "/apis")["groups"]}
    assert groups["example.com"]["preferredVersion"]["groupVersion"] == "example.com/v1"
    resources = {r["name"]: r for r in ok(emu, "GET", "/apis/example.com/v1")["resources"]}
    assert resources["widgets"]["kind"] == "Widget" and resources["widgets"]["namespaced"] is True
    assert "widgets/status" in resources
    path = "/apis/example.com/v1/namespaces/default/widgets"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}}
    created = ok(emu, "POST", path, widget)
    assert created["metadata"]["generation"] == 1
    listing = ok(emu, "GET", path)
    assert listing["kind"] == "WidgetList" and listing["items"][0]["kind"] == "Widget"
    deleted = ok(emu, "DELETE", f"{path}/w1")
    assert deleted["kind"] == "Widget"  # custom resources answer a DELETE with the object


def test_invalid_crd_is_refused(emu: KubeEmulator) -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = "wrong.example.com"
    code, body = call(emu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 422 and 'must be spec.names.plural+"."+spec.group' in body["message"]


def test_deleting_a_crd_deletes_its_objects_and_kind(emu: KubeEmulator) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    ok(emu, "POST", crds, widget_crd(scope="Cluster"))
    ok(emu, "POST", "/apis/example.com/v1/widgets", {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    ok(emu, "DELETE", f"{crds}/widgets.example.com")
    assert call(emu, "GET", f"{crds}/widgets.example.com")[0] == 404
    assert call(emu, "GET", "/apis/example.com/v1")[0] == 404
    assert "example.com" not in {g["name"] for g in ok(emu, "GET", "/apis")["groups"]}
    assert emu.objects(group="example.com") == []


# -- deletion ----------------------------------------------------------------------------------------


def owned(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    cm = configmap(name)
    cm["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                                          "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]
    return cm


@pytest.mark.parametrize("policy", ["Background", "Foreground", None])
def test_dependents_are_garbage_collected(emu: KubeEmulator, policy: str | None) -> None:
    owner = ok(emu, "POST", CM, configmap("owner"))
    child = ok(emu, "POST", CM, owned("child", owner))
    ok(emu, "POST", CM, owned("grandchild", child))
    query = f"?propagationPolicy={policy}" if policy else ""
    out = ok(emu, "DELETE", f"{CM}/owner{query}")
    if policy == "Foreground":
        assert out["metadata"]["deletionTimestamp"] and "foregroundDeletion" in out["metadata"]["finalizers"]
    names = {o["metadata"]["name"] for o in emu.objects(kind="ConfigMap", namespace="default")}
    assert names == {"kube-root-ca.crt"}


def test_orphan_keeps_dependents_and_drops_the_reference(emu: KubeEmulator) -> None:
    owner = ok(emu, "POST", CM, configmap("owner"))
    ok(emu, "POST", CM, owned("child", owner))
    ok(emu, "DELETE", f"{CM}/owner", {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"})
    child = ok(emu, "GET", f"{CM}/child")
    assert "ownerReferences" not in child["metadata"]
    assert call(emu, "GET", f"{CM}/owner")[0] == 404


def test_finalizers_hold_an_object_until_removed(emu: KubeEmulator) -> None:
    cm = configmap("held")
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    ok(emu, "POST", CM, cm)
    pending = ok(emu, "DELETE", f"{CM}/held")
    assert pending["metadata"]["deletionTimestamp"] and pending["metadata"]["finalizers"] == ["example.com/hold"]
    assert ok(emu, "GET", f"{CM}/held")["metadata"]["deletionTimestamp"]
    ok(emu, "PATCH", f"{CM}/held", {"metadata": {"finalizers": None}}, content_type=MERGE)
    assert call(emu, "GET", f"{CM}/held")[0] == 404


def test_deleting_a_namespace_deletes_its_objects(emu: KubeEmulator) -> None:
    namespace(emu, "doomed")
    ok(emu, "POST", "/api/v1/namespaces/doomed/configmaps", configmap("a", "doomed"))
    held = configmap("held", "doomed")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    ok(emu, "POST", "/api/v1/namespaces/doomed/configmaps", held)
    out = ok(emu, "DELETE", "/api/v1/namespaces/doomed")
    assert out["status"]["phase"] == "Terminating"
    code, body = call(emu, "POST", "/api/v1/namespaces/doomed/configmaps", configmap("new", "doomed"))
    assert code == 403 and body["reason"] == "Forbidden" and "being terminated" in body["message"]
    assert [o["metadata"]["name"] for o in emu.objects(namespace="doomed")] == ["held"]
    ok(emu, "PATCH", "/api/v1/namespaces/doomed/configmaps/held", {"metadata": {"finalizers": None}}, content_type=MERGE)
    assert call(emu, "GET", "/api/v1/namespaces/doomed")[0] == 404


def test_delete_preconditions(emu: KubeEmulator) -> None:
    ok(emu, "POST", CM, configmap("a"))
    code, body = call(emu, "DELETE", f"{CM}/a", {"preconditions": {"uid": "not-it"}})
    assert code == 409 and "Precondition failed: UID in precondition: not-it" in body["message"]


# -- watch -------------------------------------------------------------------------------------------


def stream(emu: KubeEmulator, path: str, into: list[dict[str, Any]]) -> threading.Thread:
    def run() -> None:
        with urllib.request.urlopen(emu.url + path, timeout=10) as response:
            for line in response:
                into.append(json.loads(line))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_watch_streams_events_from_a_resource_version(emu: KubeEmulator) -> None:
    rv = ok(emu, "GET", CM)["metadata"]["resourceVersion"]
    events: list[dict[str, Any]] = []
    thread = stream(emu, f"{CM}?watch=1&resourceVersion={rv}&timeoutSeconds=1", events)
    time.sleep(0.2)
    ok(emu, "POST", CM, configmap("a"))
    ok(emu, "PATCH", f"{CM}/a", {"data": {"k": "w"}}, content_type=MERGE)
    ok(emu, "DELETE", f"{CM}/a")
    thread.join()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[0]["object"]["kind"] == "ConfigMap" and events[0]["object"]["apiVersion"] == "v1"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert emu.counts()["watch"] == 1


def test_watch_without_version_starts_with_the_current_state(emu: KubeEmulator) -> None:
    ok(emu, "POST", CM, configmap("a", labels={"team": "x"}))
    events: list[dict[str, Any]] = []
    thread = stream(emu, "/api/v1/watch/namespaces/default/configmaps?labelSelector=team%3Dx&timeoutSeconds=1&allowWatchBookmarks=true", events)
    time.sleep(0.2)
    ok(emu, "PATCH", f"{CM}/a", {"metadata": {"labels": {"team": "y"}}}, content_type=MERGE)
    ok(emu, "PATCH", f"{CM}/a", {"metadata": {"labels": {"team": "x"}}}, content_type=MERGE)
    thread.join()
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED", "BOOKMARK"]


def test_watch_from_a_compacted_version_is_gone(emu: KubeEmulator) -> None:
    ok(emu, "POST", CM, configmap("a"))
    old = ok(emu, "GET", CM)["metadata"]["resourceVersion"]
    ok(emu, "POST", CM, configmap("b"))
    emu.compact()
    events: list[dict[str, Any]] = []
    stream(emu, f"{CM}?watch=true&resourceVersion={old}&timeoutSeconds=1", events).join()
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_watch_ends_when_the_emulator_stops() -> None:
    emu = KubeEmulator().start()
    events: list[dict[str, Any]] = []
    thread = stream(emu, f"{CM}?watch=1", events)
    time.sleep(0.2)
    started = time.monotonic()
    emu.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 3


def test_apply_to_an_unmanaged_object_conflicts_with_before_first_apply(emu: KubeEmulator) -> None:
    ok(emu, "POST", CM, configmap("a"))
    ok(emu, "PATCH", f"{CM}/a", {"metadata": {"managedFields": [{}]}}, content_type=MERGE)
    body = apply(emu, f"{CM}/a", configmap("a", data={"k": "changed"}), expect=409)
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.k'
    assert apply(emu, f"{CM}/a", configmap("a", data={"k": "changed"}), force=True)["data"] == {"k": "changed"}


def test_legacy_watch_of_one_object(emu: KubeEmulator) -> None:
    ok(emu, "POST", CM, configmap("a"))
    ok(emu, "POST", CM, configmap("b"))
    events: list[dict[str, Any]] = []
    stream(emu, "/api/v1/watch/namespaces/default/configmaps/a?timeoutSeconds=1", events).join()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_custom_resources_refuse_strategic_merge_patch(emu: KubeEmulator) -> None:
    ok(emu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd())
    path = "/apis/example.com/v1/namespaces/default/widgets"
    ok(emu, "POST", path, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})
    code, body = call(emu, "PATCH", f"{path}/w", {"spec": {"size": 2}}, content_type="application/strategic-merge-patch+json")
    assert code == 415 and body["reason"] == "UnsupportedMediaType"
    assert ok(emu, "PATCH", f"{path}/w", {"spec": {"size": 2}}, content_type=MERGE)["metadata"]["generation"] == 2


# -- defaults, controllers, concurrency ----------------------------------------------------------------


def test_server_side_defaults(emu: KubeEmulator) -> None:
    secret = ok(emu, "POST", "/api/v1/namespaces/default/secrets",
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
    assert secret["data"] == {"password": "aHVudGVyMg=="} and secret["type"] == "Opaque" and "stringData" not in secret
    svc = ok(emu, "POST", "/api/v1/namespaces/default/services",
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}})
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"].startswith("10.96.")
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    dep = ok(emu, "POST", DEPLOY, deployment("web", image="nginx"))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Always" and dep["spec"]["strategy"]["type"] == "RollingUpdate"
    ns = ok(emu, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "x"} and ns["status"] == {"phase": "Active"}
    assert {o["metadata"]["name"] for o in emu.objects(namespace="x")} == {"default", "kube-root-ca.crt"}


def test_rollout_annotation_and_no_controllers() -> None:
    with KubeEmulator(controllers=False) as quiet:
        ok(quiet, "POST", DEPLOY, deployment("web"))
        assert ok(quiet, "GET", f"{DEPLOY}/web")["status"] == {}
        assert quiet.objects(namespace="default") == [ok(quiet, "GET", f"{DEPLOY}/web")]
    with KubeEmulator() as emu:
        stuck = deployment("web")
        stuck["metadata"]["annotations"] = {"kube-emulator.gitops.dev/rollout": "failed"}
        ok(emu, "POST", DEPLOY, stuck)
        conditions = {c["type"]: c for c in ok(emu, "GET", f"{DEPLOY}/web")["status"]["conditions"]}
        assert conditions["Progressing"]["reason"] == "ProgressDeadlineExceeded"


def test_delete_collection(emu: KubeEmulator) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        ok(emu, "POST", CM, configmap(name, labels={"team": team}))
    out = ok(emu, "DELETE", f"{CM}?labelSelector=team%3Dx")
    assert out["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in out["items"]] == ["a", "b"]
    assert [o["metadata"]["name"] for o in emu.objects(kind="ConfigMap", namespace="default")] == ["c", "kube-root-ca.crt"]
    assert emu.counts()["deletecollection"] == 1


def test_watch_list_sends_initial_events_then_a_bookmark(emu: KubeEmulator) -> None:
    ok(emu, "POST", CM, configmap("a"))
    events: list[dict[str, Any]] = []
    stream(emu, f"{CM}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1", events).join()
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_concurrent_writers_get_distinct_resource_versions(emu: KubeEmulator) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(15):
            rv = ok(emu, "POST", CM, configmap(f"w{n}-{i}"))["metadata"]["resourceVersion"]
            with lock:
                results.append(rv)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 60
    assert len(ok(emu, "GET", CM)["items"]) == 61
