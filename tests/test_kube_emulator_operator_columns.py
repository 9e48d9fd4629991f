"""CRD printer columns: Table responses as a real server builds them, read by the real kubectl."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest

from gitops.testing.kube import KubeEmulator
from gitops.testing.kube.jsonpath import JsonPathError, compile_path
from gitops.testing.kube.kubectl import Kubectl
from gitops.testing.kube.printers import human_duration

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"

#: a CRD shaped like the GitOps operator's (gitops.dev Application)
APPLICATION_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: applications.gitops.dev}
spec:
  group: gitops.dev
  scope: Namespaced
  names: {plural: applications, singular: application, kind: Application, shortNames: [app]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: SYNC, type: string, jsonPath: .status.sync}
    - {name: HEALTH, type: string, jsonPath: .status.health}
    - {name: REVISION, type: string, jsonPath: .status.lastAppliedRevision}
    - {name: READY, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status', priority: 1}
    - {name: AGE, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

APPS = """\
apiVersion: v1
kind: Namespace
metadata: {name: gitops}
---
apiVersion: gitops.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: gitops}
spec: {source: {url: "git+https://example.com/shop.git@main"}, target: {url: "k8s:"}}
---
apiVersion: gitops.dev/v1alpha1
kind: Application
metadata: {name: blog, namespace: default}
spec: {source: {url: "git+https://example.com/blog.git@main"}, target: {url: "k8s:"}}
"""


def columns(text: str) -> list[dict[str, str]]:
    """kubectl's table output as rows of {header: cell}, cut at the header's column starts
    (cells may be empty, so splitting on whitespace would shift them)."""
    header, *lines = text.rstrip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)} for line in lines]


# -- the JSONPath subset ------------------------------------------------------------------------------

DOC: dict[str, Any] = {
    "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "shop"}},
    "status": {
        "sync": "Synced",
        "resources": 3,
        "conditions": [{"type": "Reconciling", "status": "False", "n": 1},
                       {"type": "Ready", "status": "True", "n": 2}],
    },
}


@pytest.mark.parametrize(("path", "found"), [
    (".status.sync", ["Synced"]),
    (".status.missing", []),
    (".status.conditions[0].type", ["Reconciling"]),
    (".status.conditions[-1].type", ["Ready"]),
    (".status.conditions[5].type", []),
    (".status.conditions[*].status", ["False", "True"]),
    ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
    (".status.conditions[?(@.type=='Ready')].status", ["True"]),
    ('.status.conditions[?(@.type!="Ready")].type', ["Reconciling"]),
    (".status.conditions[?(@.n>1)].type", ["Ready"]),
    (".status.conditions[?(@.n)].type", ["Reconciling", "Ready"]),
    ('.status.conditions[?(@.type=="Stalled")].status', []),
    (".metadata.labels.app\\.kubernetes\\.io/name", ["shop"]),
    (".metadata.labels['app.kubernetes.io/name']", ["shop"]),
    ("{.status.resources}", [3]),
    (".status.*", ["Synced", 3, DOC["status"]["conditions"]]),
])
def test_jsonpath_subset_finds_what_client_go_finds(path: str, found: list[Any]) -> None:
    assert compile_path(path).find(DOC) == found


@pytest.mark.parametrize("path", ["status.sync", "..status", ".status..sync", ".a[1:2]", ".a[?(@.x=~/y/)]", ".a[0,1]", ".a["])
def test_jsonpath_beyond_the_subset_is_refused(path: str) -> None:
    with pytest.raises(JsonPathError, match=re.escape(repr(path))):
        compile_path(path)


MS = 0.001


@pytest.mark.parametrize(("seconds", "shown"), [  # apimachinery's duration_test.go
    (1, "1s"), (70, "70s"), (190, "3m10s"), (70 * 60, "70m"), (47 * 3600, "47h"), (49 * 3600, "2d1h"),
    ((8 * 24 + 2) * 3600, "8d"), (367 * 24 * 3600, "367d"), ((365 * 2 * 24 + 25) * 3600, "2y1d"),
    ((365 * 8 * 24 + 2) * 3600, "8y"), (-2, "<invalid>"), (-2 + 1e-9, "0s"), (1 - MS, "0s"), (120 - MS, "119s"),
    (120, "2m"), (121, "2m1s"), (600 - MS, "9m59s"), (601, "10m"), (3 * 3600 - MS, "179m"), (3 * 3600 + 60, "3h1m"),
    (8 * 3600 - MS, "7h59m"), (8 * 3600 + 59 * 60, "8h"), (2 * 86400 - MS, "47h"), (2 * 86400, "2d"),
    (8 * 86400 - MS, "7d23h"), (8 * 86400 + 23 * 3600, "8d"), (2 * 365 * 86400 - MS, "729d"), (2 * 365 * 86400, "2y"),
    (2 * 365 * 86400 + 86400, "2y1d"), (5 * 365 * 86400, "5y"),
])
def test_ages_are_printed_like_human_duration(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


# -- Table responses ----------------------------------------------------------------------------------


def crd_with(columns_: list[dict[str, Any]] | None, *, name: str = "widgets") -> dict[str, Any]:
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if columns_ is not None:
        version["additionalPrinterColumns"] = columns_
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{name}.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "versions": [version],
                     "names": {"plural": name, "singular": name[:-1], "kind": name[:-1].capitalize()}}}


def test_table_serves_the_declared_columns_with_typed_cells(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    emu.expect_ok("POST", CRDS, crd_with([
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "description": "how big"},
        {"name": "Ratio", "type": "number", "format": "double", "jsonPath": ".spec.ratio"},
        {"name": "On", "type": "boolean", "jsonPath": ".spec.on", "priority": 1},
        {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
        {"name": "Count", "type": "string", "jsonPath": ".spec.size"},
        {"name": "Seen", "type": "date", "jsonPath": ".spec.seen"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "Created", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]))
    path = "/apis/example.com/v1/namespaces/default/widgets"
    emu.expect_ok("POST", path, {"apiVersion": "example.com/v1", "kind": "Widget",
                           "metadata": {"name": "w", "labels": {"b": "2", "a": "1"}},
                           "spec": {"size": 3, "ratio": 2, "on": True, "seen": "not a date"}})
    emu.expect_ok("POST", path, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "z"},
                           "spec": {"size": 2.9, "ratio": 0.5, "on": "yes", "seen": "2020-01-01T00:00:00Z"}})
    table = emu.expect_ok("GET", path, accept=TABLE)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    definitions = table["columnDefinitions"]
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in definitions] == [
        ("Name", "string", "name", 0), ("Size", "integer", "", 0), ("Ratio", "number", "double", 0),
        ("On", "boolean", "", 1), ("Labels", "string", "", 0), ("Count", "string", "", 0), ("Seen", "date", "", 0),
        ("Missing", "string", "", 0), ("Created", "date", "", 0)]
    assert definitions[1]["description"] == "how big"
    assert definitions[2]["description"] == "Custom resource definition column (in JSONPath format): .spec.ratio"
    w, z = (row["cells"] for row in table["rows"])
    assert w[:8] == ["w", 3, 2.0, True, '{"a":"1","b":"2"}', "3", "<invalid>", None]
    assert re.fullmatch(r"\d+s", w[8])
    assert z[:8] == ["z", 2, 0.5, None, None, "2.9", z[6], None]  # "yes" is no boolean; no labels
    assert re.fullmatch(r"\d+y(\d+d)?", z[6])  # years ago, as HumanDuration prints it
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    one = emu.expect_ok("GET", f"{path}/w", accept=TABLE)
    assert [c["name"] for c in one["columnDefinitions"]] == [c["name"] for c in definitions] and len(one["rows"]) == 1


def test_a_crd_without_columns_prints_name_and_age(kube_emulator: KubeEmulator) -> None:
    kube_emulator.expect_ok("POST", CRDS, crd_with(None))
    kube_emulator.expect_ok("POST", "/apis/example.com/v1/namespaces/default/widgets",
       {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    table = kube_emulator.expect_ok("GET", "/apis/example.com/v1/namespaces/default/widgets", accept=TABLE)
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [("Name", "string"), ("Age", "date")]
    [row] = table["rows"]
    assert row["cells"][0] == "w" and re.fullmatch(r"\d+s", row["cells"][1])


@pytest.mark.parametrize(("column", "field", "message"), [
    ({"name": "X", "type": "text", "jsonPath": ".spec.x"}, "type", 'Invalid value: "text": must be one of boolean,date,integer,number,string'),
    ({"name": "X", "type": "string", "format": "uuid", "jsonPath": ".spec.x"}, "format", 'Invalid value: "uuid"'),
    ({"name": "X", "type": "string"}, "JSONPath", "Required value"),
    ({"name": "X", "type": "string", "jsonPath": "spec.x"}, "JSONPath", "must be a simple json path starting with ."),
    ({"name": "X", "type": "string", "jsonPath": ".spec.items[1:3]"}, "JSONPath", "the Kubernetes emulator evaluates only"),
])
def test_invalid_printer_columns_are_refused(kube_emulator: KubeEmulator, column: dict[str, Any], field: str,
                                             message: str) -> None:
    code, body = kube_emulator.request("POST", CRDS, crd_with([column]))
    assert code == 422, body
    [cause] = body["details"]["causes"]
    assert cause["field"] == f"spec.versions[0].additionalPrinterColumns[0].{field}"
    assert message in cause["message"]


# -- the real kubectl ---------------------------------------------------------------------------------


def status_patch(sync: str, health: str, revision: str, ready: str) -> str:
    conditions = [{"type": "Reconciling", "status": "False"}, {"type": "Ready", "status": ready}]
    return json.dumps({"status": {"sync": sync, "health": health, "lastAppliedRevision": revision, "conditions": conditions}})


def test_kubectl_get_applications_prints_the_crd_columns(kube_kubectl: Kubectl) -> None:
    kubectl = kube_kubectl
    kubectl.apply(APPLICATION_CRD)
    kubectl.apply(APPS)
    kubectl("patch", "application", "shop", "-n", "gitops", "--subresource=status", "--type=merge",
            "-p", status_patch("Synced", "Healthy", "4f2a9c1", "True"))
    rows = columns(kubectl("get", "applications", "-A").stdout)
    assert [list(r) for r in rows] == [["NAMESPACE", "NAME", "SYNC", "HEALTH", "REVISION", "AGE"]] * 2
    blog, shop = rows
    assert shop | {"AGE": ""} == {"NAMESPACE": "gitops", "NAME": "shop", "SYNC": "Synced", "HEALTH": "Healthy",
                                  "REVISION": "4f2a9c1", "AGE": ""}
    assert blog | {"AGE": ""} == {"NAMESPACE": "default", "NAME": "blog", "SYNC": "", "HEALTH": "", "REVISION": "", "AGE": ""}
    assert re.fullmatch(r"\d+s", shop["AGE"]) and re.fullmatch(r"\d+s", blog["AGE"])
    wide = {r["NAME"]: r for r in columns(kubectl("get", "app", "-A", "-o", "wide").stdout)}
    assert wide["shop"]["READY"] == "True" and wide["blog"]["READY"] == ""
    assert "READY" not in rows[0]


def test_kubectl_get_watch_prints_columns_of_status_changes(kube_kubectl: Kubectl, kube_emulator: KubeEmulator) -> None:
    kubectl = kube_kubectl
    kubectl.apply(APPLICATION_CRD)
    kubectl.apply(APPS)
    watcher = kubectl.popen("get", "applications", "-n", "gitops", "-w")
    lines: list[str] = []

    def read() -> None:
        assert watcher.stdout is not None
        lines.extend(iter(watcher.stdout.readline, ""))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while len(lines) < 2 and time.monotonic() < deadline:  # the header and the listed row
            time.sleep(0.02)
        kube_emulator.expect_ok("PATCH", "/apis/gitops.dev/v1alpha1/namespaces/gitops/applications/shop/status",
           status_patch("OutOfSync", "Progressing", "b7e01d2", "False"), content_type=MERGE)
        while not any("OutOfSync" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.terminate()
        watcher.wait(5)
    assert lines[0].split() == ["NAME", "SYNC", "HEALTH", "REVISION", "AGE"]
    changed = [line.split() for line in lines if "OutOfSync" in line]
    assert changed and changed[0][:4] == ["shop", "OutOfSync", "Progressing", "b7e01d2"], lines
