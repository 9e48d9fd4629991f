"""The status subresource of custom resources, generations, and watches of custom objects."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import yaml

from gitops.testing.kube import KubeEmulator
from gitops.testing.kube.kubectl import Kubectl

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
APPS = "/apis/gitops.dev/v1alpha1/namespaces/default/applications"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def application_crd(*, status_subresource: bool = True) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1alpha1", "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "applications.gitops.dev"},
            "spec": {"group": "gitops.dev", "scope": "Namespaced", "versions": [version],
                     "names": {"plural": "applications", "singular": "application", "kind": "Application"}}}


def application(name: str, interval: str = "1m", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "metadata": {"name": name},
            "spec": {"source": {"url": "git+https://example.com/r.git"}, "interval": interval}, **extra}


@pytest.fixture
def emu(kube_emulator: KubeEmulator) -> KubeEmulator:
    kube_emulator.expect_ok("POST", CRDS, application_crd())
    return kube_emulator


def test_create_drops_status_and_starts_at_generation_one(emu: KubeEmulator) -> None:
    created = emu.expect_ok("POST", APPS, application("shop", status={"sync": "Synced"}))
    assert "status" not in created and created["metadata"]["generation"] == 1


@pytest.mark.parametrize("how", ["put", "merge", "json", "apply"])
def test_status_writes_change_only_the_status(emu: KubeEmulator, how: str) -> None:
    live = emu.expect_ok("POST", APPS, application("shop"))
    wanted = {"sync": "Synced", "health": "Healthy", "lastAppliedRevision": "abc123"}
    tampered: dict[str, Any] = {"spec": {"interval": "5h"}, "metadata": {"labels": {"sneaky": "yes"}}}
    if how == "put":
        body = {**live, **tampered, "metadata": {**live["metadata"], **tampered["metadata"]}, "status": wanted}
        out = emu.expect_ok("PUT", f"{APPS}/shop/status", body)
    elif how == "merge":
        out = emu.expect_ok("PATCH", f"{APPS}/shop/status", {**tampered, "status": wanted}, content_type=MERGE)
    elif how == "json":
        ops = [{"op": "add", "path": "/status", "value": wanted}, {"op": "replace", "path": "/spec/interval", "value": "5h"}]
        out = emu.expect_ok("PATCH", f"{APPS}/shop/status", ops, content_type=JSON_PATCH)
    else:
        applied = {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "metadata": {"name": "shop"},
                   **tampered, "status": wanted}
        out = emu.expect_ok("PATCH", f"{APPS}/shop/status?fieldManager=gitops-controller", yaml.safe_dump(applied),
                 content_type=APPLY)
        entry = next(m for m in out["metadata"]["managedFields"] if m["manager"] == "gitops-controller")
        assert entry["subresource"] == "status" and entry["operation"] == "Apply"
        assert set(entry["fieldsV1"]) == {"f:status"}
    assert out["status"] == wanted
    stored = emu.expect_ok("GET", f"{APPS}/shop")
    assert stored["status"] == wanted and stored["spec"]["interval"] == "1m"
    assert "labels" not in stored["metadata"] and stored["metadata"]["generation"] == 1
    assert int(stored["metadata"]["resourceVersion"]) > int(live["metadata"]["resourceVersion"])


@pytest.mark.parametrize("how", ["put", "merge", "apply"])
def test_writes_to_the_main_resource_ignore_status(emu: KubeEmulator, how: str) -> None:
    emu.expect_ok("POST", APPS, application("shop"))
    emu.expect_ok("PATCH", f"{APPS}/shop/status", {"status": {"sync": "Synced"}}, content_type=MERGE)
    live = emu.expect_ok("GET", f"{APPS}/shop")
    if how == "put":
        out = emu.expect_ok("PUT", f"{APPS}/shop", {**live, "spec": {**live["spec"], "interval": "2m"}, "status": {"sync": "Lies"}})
    elif how == "merge":
        out = emu.expect_ok("PATCH", f"{APPS}/shop", {"spec": {"interval": "2m"}, "status": {"sync": "Lies"}}, content_type=MERGE)
    else:
        out = emu.expect_ok("PATCH", f"{APPS}/shop?fieldManager=kubectl&force=true", yaml.safe_dump(application("shop", "2m", status={"sync": "Lies"})),
                 content_type=APPLY)
    assert out["status"] == {"sync": "Synced"} and out["spec"]["interval"] == "2m"
    assert out["metadata"]["generation"] == 2


def test_generation_follows_spec_changes_only(emu: KubeEmulator) -> None:
    emu.expect_ok("POST", APPS, application("shop"))

    def generation() -> int:
        return int(emu.expect_ok("GET", f"{APPS}/shop")["metadata"]["generation"])

    emu.expect_ok("PATCH", f"{APPS}/shop/status", {"status": {"observedGeneration": 1}}, content_type=MERGE)
    emu.expect_ok("PATCH", f"{APPS}/shop", {"metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}}}, content_type=MERGE)
    assert generation() == 1
    emu.expect_ok("PATCH", f"{APPS}/shop", {"spec": {"interval": "2m"}}, content_type=MERGE)
    assert generation() == 2
    emu.expect_ok("PATCH", f"{APPS}/shop", {"spec": {"interval": "2m"}}, content_type=MERGE)  # no change, no bump
    emu.expect_ok("PATCH", f"{APPS}/shop/status", {"status": {"observedGeneration": 2}}, content_type=MERGE)
    assert generation() == 2


def test_without_the_subresource_status_is_part_of_the_object(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    emu.expect_ok("POST", CRDS, application_crd(status_subresource=False))
    created = emu.expect_ok("POST", APPS, application("shop", status={"sync": "Synced"}))
    assert created["status"] == {"sync": "Synced"}
    code, _ = emu.request("PATCH", f"{APPS}/shop/status", {"status": {}}, content_type=MERGE)
    assert code == 404
    out = emu.expect_ok("PATCH", f"{APPS}/shop", {"status": {"sync": "OutOfSync"}}, content_type=MERGE)
    assert out["status"] == {"sync": "OutOfSync"} and out["metadata"]["generation"] == 2  # as a real server counts


def test_stale_resource_version_on_status_is_a_conflict(emu: KubeEmulator) -> None:
    live = emu.expect_ok("POST", APPS, application("shop"))
    emu.expect_ok("PUT", f"{APPS}/shop/status", {**live, "status": {"sync": "Synced"}})
    code, body = emu.request("PUT", f"{APPS}/shop/status", {**live, "status": {"sync": "OutOfSync"}})
    assert code == 409 and body["reason"] == "Conflict"
    assert 'Operation cannot be fulfilled on applications.gitops.dev "shop"' in body["message"]


def test_kubectl_get_yaml_shows_status_and_generation(emu: KubeEmulator, kube_kubectl: Kubectl) -> None:
    emu.expect_ok("POST", APPS, application("shop"))
    emu.expect_ok("PATCH", f"{APPS}/shop", {"spec": {"interval": "2m"}}, content_type=MERGE)
    kube_kubectl("patch", "application", "shop", "--subresource=status", "--type=merge",
                 "-p", '{"status":{"sync":"Synced","observedGeneration":2}}')
    shown = yaml.safe_load(kube_kubectl("get", "application", "shop", "-o", "yaml").stdout)
    assert shown["status"] == {"sync": "Synced", "observedGeneration": 2}
    assert shown["metadata"]["generation"] == 2 and shown["spec"]["interval"] == "2m"


# -- watches of custom objects ------------------------------------------------------------------------


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(e["type"], e["object"]["metadata"]["name"], (e["object"].get("status") or {}).get("sync")) for e in events]


def test_watch_sees_additions_status_changes_and_deletions_and_resumes(emu: KubeEmulator) -> None:
    start = emu.expect_ok("GET", APPS)["metadata"]["resourceVersion"]
    emu.expect_ok("POST", APPS, application("shop"))
    emu.expect_ok("POST", APPS, application("blog"))
    emu.expect_ok("PATCH", f"{APPS}/shop/status", {"status": {"sync": "Synced"}}, content_type=MERGE)
    emu.expect_ok("PATCH", f"{APPS}/shop/status", {"status": {"sync": "Synced"}}, content_type=MERGE)  # no-op: no event
    emu.expect_ok("DELETE", f"{APPS}/blog")
    events = emu.watch(f"{APPS}?resourceVersion={start}", count=4, timeout=5)
    assert summary(events) == [("ADDED", "shop", None), ("ADDED", "blog", None), ("MODIFIED", "shop", "Synced"),
                               ("DELETED", "blog", None)]
    assert all(e["object"]["kind"] == "Application" for e in events)
    # resume from the status change: only what came after it
    middle = events[2]["object"]["metadata"]["resourceVersion"]
    assert summary(emu.watch(f"{APPS}?resourceVersion={middle}", count=1, timeout=5)) == [("DELETED", "blog", None)]
    # all namespaces, with a label selector
    emu.expect_ok("PATCH", f"{APPS}/shop", {"metadata": {"labels": {"team": "a"}}}, content_type=MERGE)
    later = emu.watch(f"/apis/gitops.dev/v1alpha1/applications?resourceVersion={middle}&labelSelector=team%3Da",
                      count=1, timeout=5)
    assert summary(later) == [("ADDED", "shop", "Synced")]  # entered the selection
    emu.compact()
    [expired] = emu.watch(f"{APPS}?resourceVersion={start}", count=1, timeout=5)
    assert expired["type"] == "ERROR" and expired["object"]["code"] == 410


def test_a_live_watch_sees_a_status_write_made_after_it_opened(emu: KubeEmulator) -> None:
    emu.expect_ok("POST", APPS, application("shop"))
    rv = emu.expect_ok("GET", APPS)["metadata"]["resourceVersion"]

    def write_later() -> None:
        emu.expect_ok("PATCH", f"{APPS}/shop/status", {"status": {"sync": "OutOfSync"}}, content_type=MERGE)

    timer = threading.Timer(0.1, write_later)
    timer.start()
    events = emu.watch(f"{APPS}?resourceVersion={rv}", count=1, timeout=5)
    timer.join()
    assert summary(events) == [("MODIFIED", "shop", "OutOfSync")]
