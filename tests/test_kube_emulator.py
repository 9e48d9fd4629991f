"""The Kubernetes API emulator over real HTTP: discovery, CRUD, selectors, patches, errors."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml

from gitops.testing.kube import CONTEXT, KubeEmulator

JSON = "application/json"


def call(emu: KubeEmulator, method: str, path: str, body: Any = None, *, content_type: str = JSON,
         accept: str = JSON) -> tuple[int, Any]:
    """One HTTP request; returns (status code, decoded JSON body or text)."""
    return emu.request(method, path, body, content_type=content_type, accept=accept)


def ok(emu: KubeEmulator, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    code, out = call(emu, method, path, body, **kwargs)
    assert code in (200, 201), (code, out)
    return out


def configmap(name: str, namespace: str = "default", labels: dict[str, str] | None = None,
              data: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name: str, namespace: str = "default", image: str = "nginx:1.25", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }


CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture
def emu(kube_emulator: KubeEmulator) -> KubeEmulator:
    return kube_emulator


# -- discovery ------------------------------------------------------------------------------------


def test_discovery_documents_are_the_recorded_ones(emu: KubeEmulator) -> None:
    assert ok(emu, "GET", "/api")["versions"] == ["v1"]
    core = ok(emu, "GET", "/api/v1")
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["configmaps"]["namespaced"] is True and by_name["configmaps"]["shortNames"] == ["cm"]
    assert by_name["namespaces"]["namespaced"] is False
    groups = {g["name"]: g for g in ok(emu, "GET", "/apis")["groups"]}
    for group in ("apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "apiextensions.k8s.io",
                  "policy", "autoscaling", "storage.k8s.io", "coordination.k8s.io"):
        assert group in groups
    assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
    apps = ok(emu, "GET", "/apis/apps/v1")
    assert {"deployments", "deployments/status", "statefulsets"} <= {r["name"] for r in apps["resources"]}
    assert ok(emu, "GET", "/apis/apps")["preferredVersion"]["groupVersion"] == "apps/v1"
    assert ok(emu, "GET", "/version")["gitVersion"].startswith("v1.")
    assert call(emu, "GET", "/apis/nope.example.com/v1")[0] == 404
    assert emu.counts()["discovery"] == 7


def test_aggregated_discovery_when_asked(emu: KubeEmulator) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    request = urllib.request.Request(emu.url + "/apis", headers={"Accept": accept})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        doc = json.loads(response.read())
    assert doc["kind"] == "APIGroupDiscoveryList"
    apps = next(g for g in doc["items"] if g["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["responseKind"]["kind"] == "Deployment"
    assert {s["subresource"] for s in deploy["subresources"]} == {"scale", "status"}
    core = ok(emu, "GET", "/api", accept=accept)
    assert core["items"][0]["versions"][0]["version"] == "v1"


def test_kubeconfig_names_the_emulator(emu: KubeEmulator) -> None:
    assert emu.kubeconfig_path is not None
    config = yaml.safe_load(emu.kubeconfig_path.read_text())
    assert config["current-context"] == CONTEXT == "gitops-emulator"
    assert config["contexts"][0]["name"] == CONTEXT
    assert config["clusters"][0]["cluster"]["server"] == emu.url
    assert config["users"][0]["user"]["token"]


def test_system_namespaces_exist(emu: KubeEmulator) -> None:
    names = [n["metadata"]["name"] for n in ok(emu, "GET", "/api/v1/namespaces")["items"]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


# -- CRUD -----------------------------------------------------------------------------------------


def test_create_get_list_update_delete(emu: KubeEmulator) -> None:
    code, created = call(emu, "POST", CM, configmap("a", labels={"app": "x"}))
    assert code == 201
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"].endswith("Z")
    assert "generation" not in meta  # ConfigMaps have none on a real server
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    got = ok(emu, "GET", f"{CM}/a")
    assert got["data"] == {"k": "v"}
    listing = ok(emu, "GET", CM)
    assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])
    item = next(i for i in listing["items"] if i["metadata"]["name"] == "a")
    assert "kind" not in item  # typed lists carry no per-item kind, as on a real server
    got["data"] = {"k": "w"}
    updated = ok(emu, "PUT", f"{CM}/a", got)
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    code, stale = call(emu, "PUT", f"{CM}/a", got)  # still carries the old resourceVersion
    assert code == 409
    assert stale == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
        "reason": "Conflict", "details": {"name": "a", "kind": "configmaps"}, "code": 409,
    }
    deleted = ok(emu, "DELETE", f"{CM}/a")
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert deleted["details"] == {"name": "a", "kind": "configmaps", "uid": meta["uid"]}
    code, missing = call(emu, "GET", f"{CM}/a")
    assert (code, missing) == (404, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "a" not found', "reason": "NotFound",
        "details": {"name": "a", "kind": "configmaps"}, "code": 404,
    })


def test_cluster_scoped_and_group_resources(emu: KubeEmulator) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:reader"}, "rules": []}
    ok(emu, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    assert ok(emu, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:reader")["metadata"].get("namespace") is None
    code, body = call(emu, "GET", f"{DEPLOY}/nope")
    assert code == 404 and body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_missing_namespace_is_refused_like_the_real_server(emu: KubeEmulator) -> None:
    code, body = call(emu, "POST", "/api/v1/namespaces/ghost/configmaps", configmap("a", "ghost"))
    assert code == 404
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'namespaces "ghost" not found', "reason": "NotFound",
                    "details": {"name": "ghost", "kind": "namespaces"}, "code": 404}
    apply_code, _ = call(emu, "PATCH", "/api/v1/namespaces/ghost/configmaps/a?fieldManager=t",
                         yaml.safe_dump(configmap("a", "ghost")), content_type="application/apply-patch+yaml")
    assert apply_code == 404
    assert call(emu, "GET", "/api/v1/namespaces/ghost/configmaps")[1]["items"] == []


def test_unknown_resource_and_namespace_mismatch(emu: KubeEmulator) -> None:
    code, body = call(emu, "GET", "/api/v1/namespaces/default/widgets")
    assert code == 404 and body["reason"] == "NotFound" and body["message"] == "the server could not find the requested resource"
    code, body = call(emu, "POST", CM, configmap("a", "other"))
    assert code == 400 and body["reason"] == "BadRequest"
    code, body = call(emu, "POST", CM, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert code == 400


def test_invalid_objects_are_422(emu: KubeEmulator) -> None:
    code, body = call(emu, "POST", CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert code == 422 and body["reason"] == "Invalid"
    assert body["message"] == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    assert body["details"]["causes"] == [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]
    code, body = call(emu, "POST", CM, configmap("Bad_Name"))
    assert code == 422 and "RFC 1123 subdomain" in body["message"]
    bad = deployment("web")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    code, body = call(emu, "POST", DEPLOY, bad)
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    assert body["message"].startswith('Deployment.apps "web" is invalid: spec.template.metadata.labels')


def test_generate_name(emu: KubeEmulator) -> None:
    body = configmap("x")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "gen-"
    created = ok(emu, "POST", CM, body)
    assert created["metadata"]["name"].startswith("gen-") and len(created["metadata"]["name"]) == 9
    assert created["metadata"]["generateName"] == "gen-"


def test_resource_version_is_a_global_counter_and_generation_tracks_spec(emu: KubeEmulator) -> None:
    first = ok(emu, "POST", CM, configmap("a"))
    dep = ok(emu, "POST", DEPLOY, deployment("web"))
    assert int(dep["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert dep["metadata"]["generation"] == 1
    labelled = ok(emu, "PATCH", f"{DEPLOY}/web", {"metadata": {"labels": {"a": "b"}}}, content_type="application/merge-patch+json")
    assert labelled["metadata"]["generation"] == 1  # metadata changes do not bump it
    scaled = ok(emu, "PATCH", f"{DEPLOY}/web", {"spec": {"replicas": 3}}, content_type="application/merge-patch+json")
    assert scaled["metadata"]["generation"] == 2
    before = ok(emu, "GET", f"{DEPLOY}/web")["metadata"]["resourceVersion"]  # after the controller's status write
    again = ok(emu, "PATCH", f"{DEPLOY}/web", {"spec": {"replicas": 3}}, content_type="application/merge-patch+json")
    assert again["metadata"]["resourceVersion"] == before  # a no-op write changes nothing


def test_status_is_a_subresource(emu: KubeEmulator) -> None:
    ok(emu, "POST", DEPLOY, deployment("web"))
    live = ok(emu, "GET", f"{DEPLOY}/web")
    assert live["status"]["observedGeneration"] == 1  # the stand-in controller rolled it out
    live["status"] = {"replicas": 99}
    assert ok(emu, "PUT", f"{DEPLOY}/web", live)["status"]["replicas"] == 1  # ignored on the main resource
    live = ok(emu, "GET", f"{DEPLOY}/web")
    patched = ok(emu, "PATCH", f"{DEPLOY}/web/status", {"status": {"replicas": 7}}, content_type="application/merge-patch+json")
    assert patched["status"]["replicas"] == 7 and patched["metadata"]["generation"] == 1


# -- selectors and paging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d", "kube-root-ca.crt"]),
        ("app in (web,db)", ["a", "b", "c"]),
        ("app notin (web)", ["c", "d", "kube-root-ca.crt"]),
        ("tier", ["b", "c"]),
        ("!tier", ["a", "d", "kube-root-ca.crt"]),
        ("app=web,tier=front", ["b"]),
        ("app in (web, db), !tier", ["a"]),
        ("size>2", ["c"]),
        ("size<2", ["b"]),
    ],
)
def test_label_selectors(emu: KubeEmulator, selector: str, expected: list[str]) -> None:
    for name, labels in {"a": {"app": "web"}, "b": {"app": "web", "tier": "front", "size": "1"},
                         "c": {"app": "db", "tier": "back", "size": "3"}, "d": {"other": "x"}}.items():
        ok(emu, "POST", CM, configmap(name, labels=labels))
    query = urllib.parse.quote(selector)
    names = [i["metadata"]["name"] for i in ok(emu, "GET", f"{CM}?labelSelector={query}")["items"]]
    assert names == expected


def test_bad_label_selector_is_400(emu: KubeEmulator) -> None:
    code, body = call(emu, "GET", f"{CM}?labelSelector=" + urllib.parse.quote("app in web"))
    assert code == 400 and body["reason"] == "BadRequest"


def test_field_selectors(emu: KubeEmulator) -> None:
    ok(emu, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    ok(emu, "POST", CM, configmap("a"))
    ok(emu, "POST", "/api/v1/namespaces/other/configmaps", configmap("a", "other"))
    names = [(i["metadata"]["namespace"], i["metadata"]["name"])
             for i in ok(emu, "GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Da")["items"]]
    assert names == [("default", "a"), ("other", "a")]
    only = ok(emu, "GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dother,metadata.name!%3Dkube-root-ca.crt")
    assert [i["metadata"]["name"] for i in only["items"]] == ["a"]
    code, body = call(emu, "GET", f"{CM}?fieldSelector=spec.foo%3D1")
    assert code == 400 and body["message"] == "field label not supported: spec.foo"


def test_limit_and_continue(emu: KubeEmulator) -> None:
    for i in range(5):
        ok(emu, "POST", CM, configmap(f"cm-{i}"))
    first = ok(emu, "GET", f"{CM}?limit=2")
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 4
    token = first["metadata"]["continue"]
    second = ok(emu, "GET", f"{CM}?limit=10&continue={token}")
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm-2", "cm-3", "cm-4", "kube-root-ca.crt"]
    assert "continue" not in second["metadata"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


# -- patches --------------------------------------------------------------------------------------------


def test_json_merge_and_strategic_patches(emu: KubeEmulator) -> None:
    dep = deployment("web")
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    ok(emu, "POST", DEPLOY, dep)
    out = ok(emu, "PATCH", f"{DEPLOY}/web", [{"op": "replace", "path": "/spec/replicas", "value": 2}],
             content_type="application/json-patch+json")
    assert out["spec"]["replicas"] == 2
    code, _ = call(emu, "PATCH", f"{DEPLOY}/web", [{"op": "test", "path": "/spec/replicas", "value": 5}],
                      content_type="application/json-patch+json")
    assert code == 422
    out = ok(emu, "PATCH", f"{DEPLOY}/web", {"metadata": {"labels": {"x": "y"}}, "spec": {"paused": None}},
             content_type="application/merge-patch+json")
    assert out["metadata"]["labels"] == {"x": "y"}
    smp = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx:1.26", "env": [{"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "busybox"},
    ]}}}}
    out = ok(emu, "PATCH", f"{DEPLOY}/web", smp, content_type="application/strategic-merge-patch+json")
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["image"] == "nginx:1.26"
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    out = ok(emu, "PATCH", f"{DEPLOY}/web", delete, content_type="application/strategic-merge-patch+json")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert call(emu, "PATCH", f"{DEPLOY}/web", {}, content_type="text/plain")[0] == 415
    assert call(emu, "PATCH", f"{DEPLOY}/nope", {}, content_type="application/merge-patch+json")[0] == 404


def test_dry_run_stores_nothing(emu: KubeEmulator) -> None:
    rv = emu.store.resource_version
    created = ok(emu, "POST", f"{CM}?dryRun=All", configmap("a"))
    assert created["metadata"]["name"] == "a" and created["metadata"]["uid"]
    assert call(emu, "GET", f"{CM}/a")[0] == 404
    applied = call(emu, "PATCH", f"{CM}/b?fieldManager=t&dryRun=All", yaml.safe_dump(configmap("b")),
                   content_type="application/apply-patch+yaml")
    assert applied[0] == 201 and call(emu, "GET", f"{CM}/b")[0] == 404
    code, _ = call(emu, "POST", f"{CM}?dryRun=All", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert code == 422  # a dry run still validates
    assert emu.store.resource_version == rv
    ok(emu, "POST", CM, configmap("a"))
    rv = emu.store.resource_version
    ok(emu, "PATCH", f"{CM}/a?dryRun=All", {"data": {"k": "changed"}}, content_type="application/merge-patch+json")
    ok(emu, "DELETE", f"{CM}/a?dryRun=All")
    assert ok(emu, "GET", f"{CM}/a")["data"] == {"k": "v"}
    assert emu.store.resource_version == rv
    assert call(emu, "POST", f"{CM}?dryRun=Maybe", configmap("c"))[0] == 400


# -- observation --------------------------------------------------------------------------------------


def test_counters_requests_and_objects(emu: KubeEmulator) -> None:
    emu.reset_counts()
    ok(emu, "POST", CM, configmap("a"))
    ok(emu, "GET", CM)
    ok(emu, "GET", f"{CM}/a")
    ok(emu, "PATCH", f"{CM}/a", {"data": {"x": "1"}}, content_type="application/merge-patch+json")
    ok(emu, "GET", DEPLOY)
    ok(emu, "DELETE", f"{CM}/a")
    ok(emu, "GET", "/api/v1")
    assert emu.counts() == {"create": 1, "list": 2, "get": 1, "patch": 1, "delete": 1, "discovery": 1}
    by_resource = emu.counts_by_resource()
    assert by_resource[("list", "/configmaps")] == 1 and by_resource[("list", "apps/deployments")] == 1
    assert by_resource[("patch", "/configmaps")] == 1
    assert emu.requests[0] == ("POST", CM, "")
    ok(emu, "POST", DEPLOY, deployment("web"))
    objects = emu.objects(kind="Deployment")
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects] == [("apps/v1", "Deployment", "web")]
    emu.reset_counts()
    assert emu.counts() == {} and emu.requests == []


def test_strict_field_validation(emu: KubeEmulator) -> None:
    typo = deployment("web")
    typo["sepc"] = typo.pop("spec")
    code, body = call(emu, "POST", f"{DEPLOY}?fieldValidation=Strict", typo)
    assert code == 400
    assert body["message"] == 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "sepc"'
    cm = configmap("a")
    cm["metadata"]["lables"] = {"x": "y"}
    code, body = call(emu, "PATCH", f"{CM}/a?fieldManager=t&fieldValidation=Strict", json.dumps(cm),
                      content_type="application/apply-patch+yaml")
    assert code == 400 and body["message"].endswith(".metadata.lables: field not declared in schema")
    code, created = call(emu, "POST", f"{CM}?fieldValidation=Ignore", cm)
    assert code == 201 and "lables" not in created["metadata"]  # not strict: dropped, as a real server does
    assert call(emu, "POST", f"{CM}?fieldValidation=Sometimes", configmap("b"))[0] == 400
