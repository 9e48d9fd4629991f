"""OperatorAPI against the emulator: Applications, status, watches, Events, Leases."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from operator_support import operator_emulator, wait_for

from gitops.errors import InvalidURLError
from gitops.operator.kubeapi import Conflict, Expired, Lease, NotFound, OperatorAPI, WatchEvent
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]  # the fixture, imported for pytest

APPS = "/apis/gitops.dev/v1alpha1"


@pytest.fixture
def api(operator_emulator: KubeEmulator) -> Iterator[OperatorAPI]:
    with OperatorAPI.from_kubeconfig(str(operator_emulator.kubeconfig_path)) as opened:
        yield opened


@pytest.fixture
def namespace(operator_emulator: KubeEmulator) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    code, body = operator_emulator.request("POST", "/api/v1/namespaces",
                                           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert code == 201, body
    return name


def create_app(emulator: KubeEmulator, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"source": {"url": "dir:x"}, "target": {"url": "k8s:"}, **spec}}
    code, stored = emulator.request("POST", f"{APPS}/namespaces/{namespace}/applications", body)
    assert code == 201, stored
    return dict(stored)


def test_an_unknown_context_is_named(operator_emulator: KubeEmulator) -> None:
    with pytest.raises(InvalidURLError, match="no context 'nope'"):
        OperatorAPI.from_kubeconfig(str(operator_emulator.kubeconfig_path), "nope")


def test_list_get_and_patch_spec(api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    items, version = api.list_applications(namespace)
    assert items == [] and version
    create_app(operator_emulator, namespace, "shop", interval="1m")
    create_app(operator_emulator, namespace, "blog")
    items, _ = api.list_applications(namespace)
    assert sorted(i["metadata"]["name"] for i in items) == ["blog", "shop"]
    assert {(i["apiVersion"], i["kind"]) for i in items} == {("gitops.dev/v1alpha1", "Application")}
    everywhere, _ = api.list_applications()
    assert {"shop", "blog"} <= {i["metadata"]["name"] for i in everywhere}

    assert api.get_application(namespace, "missing") is None
    before = api.get_application(namespace, "shop")
    assert before is not None and before["spec"]["interval"] == "1m"
    after = api.patch_application_spec(namespace, "shop", {"suspend": True, "interval": None})
    assert after["spec"]["suspend"] is True and "interval" not in after["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    with pytest.raises(NotFound):
        api.patch_application_spec(namespace, "missing", {"suspend": True})


def test_write_status_touches_only_status_and_checks_the_version(
        api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    created = create_app(operator_emulator, namespace, "shop")
    version = created["metadata"]["resourceVersion"]
    stored = api.write_status(namespace, "shop", {"sync": "Synced", "health": "Healthy", "resources": 3,
                                                  "spec": "ignored"}, version)
    assert stored["status"]["sync"] == "Synced" and stored["spec"] == created["spec"]
    assert stored["metadata"]["generation"] == created["metadata"]["generation"]  # status is not spec
    # merge: other fields stay, None removes one
    stored = api.write_status(namespace, "shop", {"health": "Degraded", "resources": None})
    assert stored["status"] == {"sync": "Synced", "health": "Degraded", "spec": "ignored"}
    with pytest.raises(Conflict) as caught:
        api.write_status(namespace, "shop", {"sync": "OutOfSync"}, version)  # stale
    assert caught.value.code == 409
    assert api.get_application(namespace, "shop")["status"]["sync"] == "Synced"  # type: ignore[index]
    with pytest.raises(NotFound):
        api.write_status(namespace, "missing", {"sync": "Synced"})


def collect(watch: Any, into: list[WatchEvent], done: threading.Event) -> None:
    try:
        for event in watch:
            into.append(event)
    finally:
        done.set()


def test_watch_sees_changes_in_order_and_closes(
        api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    _, version = api.list_applications(namespace)
    watch = api.watch_applications(version, namespace=namespace, timeout_seconds=30)
    events: list[WatchEvent] = []
    done = threading.Event()
    thread = threading.Thread(target=collect, args=(watch, events, done), daemon=True)
    thread.start()
    create_app(operator_emulator, namespace, "shop")
    api.patch_application_spec(namespace, "shop", {"suspend": True})
    code, _ = operator_emulator.request("DELETE", f"{APPS}/namespaces/{namespace}/applications/shop")
    assert code == 200
    wait_for(lambda: len(events) >= 3, 5, "three watch events")
    assert [(kind, obj["metadata"]["name"]) for kind, obj in events] == [
        ("ADDED", "shop"), ("MODIFIED", "shop"), ("DELETED", "shop")]
    assert events[1][1]["spec"]["suspend"] is True
    assert events[1][1]["kind"] == "Application"
    assert watch.resource_version == events[-1][1]["metadata"]["resourceVersion"]
    watch.close()
    assert done.wait(5), "close() did not end the iteration"


def test_a_compacted_version_is_expired(api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    _, version = api.list_applications(namespace)
    create_app(operator_emulator, namespace, "shop")
    operator_emulator.compact()
    with pytest.raises(Expired) as caught, api.watch_applications(version, namespace=namespace,
                                                                  timeout_seconds=5) as watch:
        list(watch)
    assert caught.value.code == 410


# -- events -----------------------------------------------------------------------------------------


def events_about(emulator: KubeEmulator, namespace: str, name: str) -> list[dict[str, Any]]:
    code, body = emulator.request("GET", f"/api/v1/namespaces/{namespace}/events")
    assert code == 200
    return [e for e in body["items"] if e["involvedObject"].get("name") == name]


def test_events_are_recorded_and_repeats_counted(
        api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    app = create_app(operator_emulator, namespace, "shop")
    first = api.create_event(app, "Normal", "SyncSucceeded", "applied rev a")
    assert first["involvedObject"] == {
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "name": "shop", "namespace": namespace,
        "uid": app["metadata"]["uid"], "resourceVersion": app["metadata"]["resourceVersion"]}
    assert (first["type"], first["reason"], first["count"]) == ("Normal", "SyncSucceeded", 1)
    assert first["source"] == {"component": "gitops-controller"}
    assert first["metadata"]["name"].startswith("shop.")
    again = api.create_event(app, "Normal", "SyncSucceeded", "applied rev a")
    assert again["metadata"]["name"] == first["metadata"]["name"] and again["count"] == 2
    assert again["firstTimestamp"] == first["firstTimestamp"]
    api.create_event(app, "Warning", "SyncFailed", "boom")
    stored = {(e["reason"], e["count"]) for e in events_about(operator_emulator, namespace, "shop")}
    assert stored == {("SyncSucceeded", 2), ("SyncFailed", 1)}


def test_an_expired_event_is_recorded_anew(api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    app = create_app(operator_emulator, namespace, "shop")
    first = api.create_event(app, "Normal", "DriftDetected", "drift")
    code, _ = operator_emulator.request("DELETE", f"/api/v1/namespaces/{namespace}/events/{first['metadata']['name']}")
    assert code == 200
    second = api.create_event(app, "Normal", "DriftDetected", "drift")
    assert second["count"] == 1 and second["metadata"]["name"] != first["metadata"]["name"]


def test_the_event_cache_is_bounded(operator_emulator: KubeEmulator, namespace: str) -> None:
    base = OperatorAPI.from_kubeconfig(str(operator_emulator.kubeconfig_path))
    api = OperatorAPI(base.client, event_cache=2)
    app = create_app(operator_emulator, namespace, "shop")
    for reason in ("A", "B", "C"):  # A is pushed out by C
        api.create_event(app, "Normal", reason, "m")
    api.create_event(app, "Normal", "C", "m")
    api.create_event(app, "Normal", "A", "m")
    counts = sorted((e["reason"], e["count"]) for e in events_about(operator_emulator, namespace, "shop"))
    assert counts == [("A", 1), ("A", 1), ("B", 1), ("C", 2)]
    base.close()


def test_event_arguments_are_checked_and_long_messages_cut(
        api: OperatorAPI, operator_emulator: KubeEmulator, namespace: str) -> None:
    app = create_app(operator_emulator, namespace, "shop")
    with pytest.raises(ValueError, match="Normal or Warning"):
        api.create_event(app, "Error", "R", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reason"):
        api.create_event(app, "Normal", "", "m")
    event = api.create_event(app, "Warning", "SyncFailed", "x" * 5000)
    assert len(event["message"]) == 1024 and event["message"].endswith("…")


# -- leases -------------------------------------------------------------------------------------------


def test_leases_compare_and_swap(api: OperatorAPI, namespace: str) -> None:
    assert api.get_lease(namespace, "lock") is None
    now = datetime.now(UTC).replace(microsecond=123456)
    created = api.create_lease(Lease(namespace, "lock", holder="a", duration_seconds=15, acquire_time=now,
                                     renew_time=now, labels={"role": "x"}))
    assert created.resource_version and created.holder == "a" and created.renew_time == now
    with pytest.raises(Conflict):
        api.create_lease(Lease(namespace, "lock", holder="b"))
    read = api.get_lease(namespace, "lock")
    assert read == created
    assert read is not None
    renewed = api.update_lease(replace(read, renew_time=now + timedelta(seconds=2)))
    assert renewed.renew_time == now + timedelta(seconds=2)
    assert renewed.resource_version != created.resource_version
    with pytest.raises(Conflict):  # written against the version read before the renewal
        api.update_lease(replace(created, holder="b"))
    assert api.get_lease(namespace, "lock").holder == "a"  # type: ignore[union-attr]
    assert [lease.name for lease in api.list_leases(namespace, "role=x")] == ["lock"]
    assert api.list_leases(namespace, "role=y") == []
    with pytest.raises(Conflict):
        api.delete_lease(created)  # stale version
    api.delete_lease(renewed)
    api.delete_lease(renewed)  # gone already: fine
    assert api.get_lease(namespace, "lock") is None
