"""Leases (leader election) and Events (core and events.k8s.io, one resource) on the emulator."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gitops.testing.kube import KubeEmulator
from gitops.testing.kube.kubectl import Kubectl

LEASES = "/apis/coordination.k8s.io/v1/namespaces/gitops/leases"
CORE_EVENTS = "/api/v1/namespaces/gitops/events"
EVENTS = "/apis/events.k8s.io/v1/namespaces/gitops/events"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


@pytest.fixture
def emu(kube_emulator: KubeEmulator) -> KubeEmulator:
    kube_emulator.expect_ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gitops"}})
    return kube_emulator


def lease(holder: str, renew: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "gitops-controller"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": renew, "renewTime": renew,
                     "leaseTransitions": 0, **spec}}


# -- Leases -------------------------------------------------------------------------------------------


def test_lease_is_stored_as_given_and_taken_over_by_compare_and_swap(emu: KubeEmulator) -> None:
    created = emu.expect_ok("POST", LEASES, lease("replica-a", "2025-03-04T05:06:07.123456Z"))
    assert created["spec"] == {"holderIdentity": "replica-a", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                               "acquireTime": "2025-03-04T05:06:07.123456Z", "renewTime": "2025-03-04T05:06:07.123456Z"}
    assert "generation" not in created["metadata"]  # coordination.k8s.io objects carry none
    seen_by_a = emu.expect_ok("GET", f"{LEASES}/gitops-controller")
    seen_by_b = emu.expect_ok("GET", f"{LEASES}/gitops-controller")
    renewed = {**seen_by_a, "spec": {**seen_by_a["spec"], "renewTime": "2025-03-04T05:06:09.000001Z"}}
    after_renew = emu.expect_ok("PUT", f"{LEASES}/gitops-controller", renewed)
    assert after_renew["spec"]["renewTime"] == "2025-03-04T05:06:09.000001Z"
    # replica-b read before the renewal: its takeover must fail, not overwrite
    takeover = {**seen_by_b, "spec": {**seen_by_b["spec"], "holderIdentity": "replica-b", "leaseTransitions": 1}}
    code, body = emu.request("PUT", f"{LEASES}/gitops-controller", takeover)
    assert code == 409 and body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on leases.coordination.k8s.io "gitops-controller": '
                               "the object has been modified; please apply your changes to the latest version and try again")
    # with the current resourceVersion it succeeds
    current = emu.expect_ok("GET", f"{LEASES}/gitops-controller")
    won = emu.expect_ok("PUT", f"{LEASES}/gitops-controller",
             {**current, "spec": {**current["spec"], "holderIdentity": "replica-b", "leaseTransitions": 1,
                                  "acquireTime": "2025-03-04T05:07:00.000000+01:00"}})
    assert won["spec"]["holderIdentity"] == "replica-b" and won["spec"]["leaseTransitions"] == 1
    assert won["spec"]["acquireTime"] == "2025-03-04T04:07:00.000000Z"  # stored in UTC, as a real server does
    # a merge patch carrying a stale resourceVersion is refused too
    code, _ = emu.request("PATCH", f"{LEASES}/gitops-controller",
                          {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                           "spec": {"holderIdentity": "replica-c"}}, content_type=MERGE)
    assert code == 409
    assert emu.expect_ok("DELETE", f"{LEASES}/gitops-controller")["status"] == "Success"
    assert emu.request("GET", f"{LEASES}/gitops-controller")[0] == 404


@pytest.mark.parametrize(("renew", "detail"), [
    ("2025-03-04T05:06:07Z", 'cannot parse "Z" as ".000000"'),
    ("2025-03-04T05:06:07.123Z", 'cannot parse ".123Z" as ".000000"'),
    ("yesterday", 'cannot parse "yesterday" as "2006"'),
])
def test_lease_times_must_be_microtime(emu: KubeEmulator, renew: str, detail: str) -> None:
    code, body = emu.request("POST", LEASES, lease("a", "2025-03-04T05:06:07.000000Z", renewTime=renew))
    assert code == 400 and body["reason"] == "BadRequest"
    assert body["message"] == (f'Lease in version "v1" cannot be handled as a Lease: parsing time "{renew}" as '
                               f'"2006-01-02T15:04:05.000000Z07:00": {detail}')


def test_lease_spec_is_validated(emu: KubeEmulator) -> None:
    code, body = emu.request("POST", LEASES, lease("a", "2025-03-04T05:06:07.000000Z", leaseDurationSeconds=0, leaseTransitions=-1))
    assert code == 422
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.leaseDurationSeconds", "spec.leaseTransitions"]
    assert body["details"]["causes"][0]["message"] == "Invalid value: 0: must be greater than 0"


def test_kubectl_get_leases_shows_the_holder(emu: KubeEmulator, kube_kubectl: Kubectl) -> None:
    emu.expect_ok("POST", LEASES, lease("replica-a", "2025-03-04T05:06:07.123456Z"))
    header, row = kube_kubectl("get", "leases", "-n", "gitops").stdout.splitlines()
    assert header.split() == ["NAME", "HOLDER", "AGE"] and row.split()[:2] == ["gitops-controller", "replica-a"]


# -- Events -------------------------------------------------------------------------------------------

REGARDING = {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "name": "shop", "namespace": "gitops",
             "uid": "3f1c6a2e-0000-4000-8000-000000000001"}


def new_event(name: str, reason: str = "SyncSucceeded", note: str = "applied 4f2a9c1", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name},
            "eventTime": "2025-03-04T05:06:07.000000Z", "type": "Normal", "reason": reason, "action": "Sync",
            "note": note, "reportingController": "gitops.dev/controller", "reportingInstance": "controller-0",
            "regarding": REGARDING, **extra}


def old_event(name: str, reason: str = "DriftDetected", message: str = "2 objects differ") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name}, "type": "Warning", "reason": reason,
            "message": message, "involvedObject": REGARDING, "source": {"component": "gitops-controller"},
            "firstTimestamp": "2025-03-04T05:06:07Z", "lastTimestamp": "2025-03-04T05:06:07Z", "count": 1}


def test_events_are_one_resource_under_both_apis(emu: KubeEmulator) -> None:
    posted = emu.expect_ok("POST", EVENTS, new_event("shop.1"))
    assert posted["apiVersion"] == "events.k8s.io/v1" and posted["note"] == "applied 4f2a9c1"
    as_core = emu.expect_ok("GET", f"{CORE_EVENTS}/shop.1")
    assert as_core["apiVersion"] == "v1" and as_core["message"] == "applied 4f2a9c1"
    assert as_core["involvedObject"] == REGARDING and as_core["reportingComponent"] == "gitops.dev/controller"
    assert as_core["firstTimestamp"] is None and as_core["source"] == {}  # what a real server stores
    assert as_core["metadata"]["uid"] == posted["metadata"]["uid"]
    emu.expect_ok("POST", CORE_EVENTS, old_event("shop.2"))
    as_v1 = emu.expect_ok("GET", f"{EVENTS}/shop.2")
    assert as_v1["regarding"] == REGARDING and as_v1["note"] == "2 objects differ"
    assert as_v1["deprecatedCount"] == 1 and as_v1["deprecatedSource"] == {"component": "gitops-controller"}
    assert "reportingController" not in as_v1 and as_v1["eventTime"] is None
    for path, kind in ((CORE_EVENTS, "message"), (EVENTS, "note")):
        listing = emu.expect_ok("GET", path)
        assert listing["kind"] == "EventList" and [i[kind] for i in listing["items"]] == ["applied 4f2a9c1", "2 objects differ"]
        assert "kind" not in listing["items"][0]
    assert emu.request("POST", CORE_EVENTS, old_event("shop.1"))[0] == 409  # the same name, the same Event


def test_events_are_patched_through_either_api(emu: KubeEmulator) -> None:
    emu.expect_ok("POST", EVENTS, new_event("shop.1"))
    series = {"count": 2, "lastObservedTime": "2025-03-04T05:07:07.000000Z"}
    patched = emu.expect_ok("PATCH", f"{EVENTS}/shop.1", {"series": series, "note": "applied again"}, content_type=MERGE)
    assert patched["series"] == series and patched["note"] == "applied again"
    assert emu.expect_ok("GET", f"{CORE_EVENTS}/shop.1")["message"] == "applied again"
    ops = [{"op": "replace", "path": "/note", "value": "third time"}, {"op": "test", "path": "/regarding/name", "value": "shop"}]
    assert emu.expect_ok("PATCH", f"{EVENTS}/shop.1", ops, content_type=JSON_PATCH)["note"] == "third time"
    emu.expect_ok("POST", CORE_EVENTS, old_event("shop.2"))
    emu.expect_ok("PATCH", f"{CORE_EVENTS}/shop.2", {"count": 5, "lastTimestamp": "2025-03-04T06:00:00Z"}, content_type=MERGE)
    again = emu.expect_ok("GET", f"{EVENTS}/shop.2")
    assert again["deprecatedCount"] == 5 and again["deprecatedLastTimestamp"] == "2025-03-04T06:00:00Z"


def test_events_are_server_side_applied_through_events_k8s_io(emu: KubeEmulator) -> None:
    applied = new_event("shop.3")
    url = f"{EVENTS}/shop.3?fieldManager=gitops-controller"
    created = emu.expect_ok("PATCH", url, yaml.safe_dump(applied), content_type=APPLY)
    assert created["note"] == "applied 4f2a9c1" and created["regarding"] == REGARDING
    again = emu.expect_ok("PATCH", url, yaml.safe_dump({**applied, "note": "applied b7e01d2"}), content_type=APPLY)
    assert again["note"] == "applied b7e01d2" and emu.expect_ok("GET", f"{CORE_EVENTS}/shop.3")["message"] == "applied b7e01d2"
    without_time = {k: v for k, v in new_event("shop.4").items() if k != "eventTime"}
    code, body = emu.request("PATCH", f"{EVENTS}/shop.4?fieldManager=gitops-controller", yaml.safe_dump(without_time),
                             content_type=APPLY)
    assert code == 422 and body["message"] == 'Event.events.k8s.io "shop.4" is invalid: eventTime: Required value'


def test_event_validation(emu: KubeEmulator) -> None:
    for missing in ("eventTime", "action", "reportingInstance"):
        code, body = emu.request("POST", EVENTS, {k: v for k, v in new_event("x").items() if k != missing})
        assert code == 422 and [c["field"] for c in body["details"]["causes"]] == [missing]
        assert body["details"]["causes"][0]["message"] == "Required value"
    code, body = emu.request("POST", EVENTS, new_event("x", type="Fine"))
    assert code == 422 and body["details"]["causes"][0]["message"] == 'Invalid value: "": has invalid value: Fine'
    elsewhere = old_event("x")
    elsewhere["involvedObject"] = {**REGARDING, "namespace": "default"}
    code, body = emu.request("POST", CORE_EVENTS, elsewhere)
    assert code == 422 and body["details"]["causes"][0] == {
        "reason": "FieldValueInvalid", "message": 'Invalid value: "default": does not match event.namespace',
        "field": "involvedObject.namespace"}
    code, body = emu.request("POST", CORE_EVENTS, {**old_event("x"), "eventTime": "2025-03-04T05:06:07Z"})
    assert code == 400 and "cannot be handled as a Event" in body["message"]


def test_event_field_selectors(emu: KubeEmulator) -> None:
    emu.expect_ok("POST", EVENTS, new_event("shop.1"))
    emu.expect_ok("POST", CORE_EVENTS, old_event("shop.2"))
    other = old_event("blog.1")
    other["involvedObject"] = {**REGARDING, "name": "blog"}
    emu.expect_ok("POST", CORE_EVENTS, other)

    def names(path: str, selector: str) -> list[str]:
        return [i["metadata"]["name"] for i in emu.expect_ok("GET", f"{path}?fieldSelector={selector}")["items"]]

    assert names(CORE_EVENTS, "involvedObject.name=shop") == ["shop.1", "shop.2"]
    assert names(CORE_EVENTS, "involvedObject.name=shop,type=Warning") == ["shop.2"]
    assert names(CORE_EVENTS, "source=gitops.dev/controller") == ["shop.1"]  # source falls back to the reporter
    assert names(EVENTS, "regarding.name=blog") == ["blog.1"]
    assert names(EVENTS, "reportingController=gitops.dev/controller") == ["shop.1"]
    code, body = emu.request("GET", f"{EVENTS}?fieldSelector=involvedObject.name=shop")
    assert code == 400 and body["message"] == "field label not supported: involvedObject.name"


def test_watching_events_k8s_io_sees_core_writes_in_v1_form(emu: KubeEmulator) -> None:
    start = emu.expect_ok("GET", EVENTS)["metadata"]["resourceVersion"]
    emu.expect_ok("POST", CORE_EVENTS, old_event("shop.2"))
    [event] = emu.watch(f"{EVENTS}?resourceVersion={start}", count=1, timeout=5)
    assert event["type"] == "ADDED" and event["object"]["apiVersion"] == "events.k8s.io/v1"
    assert event["object"]["note"] == "2 objects differ" and event["object"]["regarding"]["name"] == "shop"


def test_kubectl_get_and_describe_show_the_events(emu: KubeEmulator, kube_kubectl: Kubectl) -> None:
    emu.expect_ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "applications.gitops.dev"},
        "spec": {"group": "gitops.dev", "scope": "Namespaced", "names": {"plural": "applications", "kind": "Application"},
                 "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    app = emu.expect_ok("POST", "/apis/gitops.dev/v1alpha1/namespaces/gitops/applications",
             {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "metadata": {"name": "shop"}})
    about_app = {**REGARDING, "uid": app["metadata"]["uid"]}
    emu.expect_ok("POST", EVENTS, new_event("shop.1", regarding=about_app))
    emu.expect_ok("POST", CORE_EVENTS, {**old_event("shop.2"), "involvedObject": about_app})
    emu.expect_ok("POST", CORE_EVENTS, old_event("stale.1", reason="Stale", message="about an older shop"))  # another uid
    header, *rows = kube_kubectl("get", "events", "-n", "gitops").stdout.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [row.split()[1:] for row in rows] == [["Normal", "SyncSucceeded", "application/shop", "applied", "4f2a9c1"],
                                                 ["Warning", "DriftDetected", "application/shop", "2", "objects", "differ"],
                                                 ["Warning", "Stale", "application/shop", "about", "an", "older", "shop"]]
    wide = kube_kubectl("get", "events", "-n", "gitops", "-o", "wide").stdout.splitlines()
    assert "gitops.dev/controller, controller-0" in wide[1] and wide[1].split()[-2:] == ["1", "shop.1"]
    # kubectl describe finds an object's events by a field selector on involvedObject (uid included)
    events = kube_kubectl("describe", "application", "shop", "-n", "gitops").stdout.split("Events:", 1)[1]
    assert "SyncSucceeded" in events and "2 objects differ" in events and "Stale" not in events
