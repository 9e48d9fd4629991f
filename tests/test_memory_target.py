"""The in-memory target: server-like bookkeeping, copies, call records, faults, URLs."""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import ApplyError, InvalidURLError, TransientError
from gitops.model import HealthStatus, Inventory, Resource, ResourceKey
from gitops.plugins import open_target
from gitops.testing import (
    KUBERNETES_SCOPES,
    Call,
    FailNth,
    FailureRate,
    FailWhen,
    FaultInjector,
    InjectedError,
    InjectedTransientError,
    Latency,
    MemoryTarget,
)

CM = ResourceKey("", "ConfigMap", "team-a", "web")
DEPLOY = ResourceKey("apps", "Deployment", "team-a", "web")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def configmap(name: str = "web", data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "team-a", **meta},
        "data": data if data is not None else {"k": "v"},
    }


def deployment(replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c"}]}}},
    }


def res(manifest: dict[str, Any]) -> Resource:
    return Resource.from_manifest(manifest)


def meta(target: MemoryTarget, key: ResourceKey = CM) -> dict[str, Any]:
    metadata: dict[str, Any] = target.objects()[key]["metadata"]
    return metadata


@pytest.fixture(autouse=True)
def _no_shared_targets() -> Iterator[None]:
    MemoryTarget.clear_shared()
    yield
    MemoryTarget.clear_shared()


# -- server-like fields ------------------------------------------------------------------


def test_create_assigns_uid_timestamp_generation_and_resource_version() -> None:
    target = MemoryTarget()
    stored = target.apply(res(configmap()))
    metadata = stored.manifest["metadata"]
    assert uuid.UUID(metadata["uid"]).version == 4
    assert RFC3339_UTC.match(metadata["creationTimestamp"])
    datetime.fromisoformat(metadata["creationTimestamp"])
    assert metadata["generation"] == 1
    assert metadata["resourceVersion"] == "1"
    assert stored.manifest == target.objects()[CM]


def test_resource_version_is_one_increasing_counter_across_objects() -> None:
    target = MemoryTarget()
    target.apply(res(configmap("a")))
    target.apply(res(configmap("b")))
    target.apply(res(configmap("a", {"k": "2"})))
    versions = {k.name: v["metadata"]["resourceVersion"] for k, v in target.objects().items()}
    assert versions == {"a": "3", "b": "2"}


def test_uid_and_creation_timestamp_survive_updates() -> None:
    target = MemoryTarget()
    first = target.apply(res(configmap())).manifest["metadata"]
    second = target.apply(res(configmap(data={"k": "new"}))).manifest["metadata"]
    assert (second["uid"], second["creationTimestamp"]) == (
        first["uid"],
        first["creationTimestamp"],
    )
    assert second["resourceVersion"] != first["resourceVersion"]


def test_generation_moves_only_when_something_outside_metadata_and_status_changes() -> None:
    target = MemoryTarget()
    target.apply(res(configmap()))
    target.apply(res(configmap()))  # identical: new resourceVersion, same generation
    assert (meta(target)["generation"], meta(target)["resourceVersion"]) == (1, "2")
    target.apply(res(configmap(labels={"tier": "web"})))
    assert meta(target)["generation"] == 1
    target.apply(res({**configmap(labels={"tier": "web"}), "status": {"x": 1}}))
    assert meta(target)["generation"] == 1
    target.apply(res(configmap(data={"k": "changed"})))
    assert meta(target)["generation"] == 2
    target.set_status(CM, {"observed": True})
    assert meta(target)["generation"] == 2


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=8))
def test_generation_counts_spec_changes(values: list[str]) -> None:
    target = MemoryTarget()
    for value in values:
        target.apply(res(configmap(data={"k": value})))
    changes = sum(1 for before, after in itertools.pairwise(values) if before != after)
    assert meta(target)["generation"] == 1 + changes
    assert meta(target)["resourceVersion"] == str(len(values))


def test_server_fields_in_an_applied_manifest_are_the_servers() -> None:
    target = MemoryTarget()
    original = target.apply(res(configmap())).manifest["metadata"]
    forged = configmap(uid="forged", generation=99, resourceVersion="999", creationTimestamp="x")
    stored = target.apply(res(forged)).manifest["metadata"]
    assert stored["uid"] == original["uid"]
    assert stored["creationTimestamp"] == original["creationTimestamp"]
    assert (stored["generation"], stored["resourceVersion"]) == (1, "2")


def test_status_is_kept_across_applies_unless_the_manifest_brings_one() -> None:
    target = MemoryTarget()
    target.apply(res(configmap()))
    target.set_status(CM, {"phase": "Ready"})
    target.apply(res(configmap(data={"k": "2"})))
    assert target.objects()[CM]["status"] == {"phase": "Ready"}
    target.apply(res({**configmap(), "status": {"phase": "Mine"}}))
    assert target.objects()[CM]["status"] == {"phase": "Mine"}


def test_status_factory_simulates_a_controller() -> None:
    """A Deployment is Progressing right after a write, Healthy once the controller caught up."""

    def rollout(obj: dict[str, Any]) -> dict[str, Any] | None:
        if obj["kind"] != "Deployment":
            return None
        return {"observedGeneration": obj["metadata"]["generation"], "replicas": 0}

    target = MemoryTarget(status_factory=rollout)
    live = target.apply(res(deployment(replicas=2)))
    assert live.manifest["status"] == {"observedGeneration": 1, "replicas": 0}
    assert target.health(live) is HealthStatus.PROGRESSING
    ready = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    target.set_status(DEPLOY, ready)
    assert target.health(live) is HealthStatus.HEALTHY
    target.apply(res(configmap()))
    assert "status" not in target.objects()[CM], "None from the factory leaves status alone"


def test_status_factory_does_not_run_on_dry_runs() -> None:
    seen: list[str] = []

    def factory(obj: dict[str, Any]) -> None:
        seen.append(obj["kind"])

    target = MemoryTarget(status_factory=factory)
    target.apply(res(configmap()), dry_run=True)
    assert seen == []


def test_health_assesses_the_stored_object_and_missing_objects() -> None:
    target = MemoryTarget()
    stale = res(deployment())
    assert target.health(stale) is HealthStatus.MISSING
    target.apply(stale)
    assert target.health(stale) is HealthStatus.PROGRESSING  # no controller has reported


# -- dry run -----------------------------------------------------------------------------


def test_dry_run_apply_previews_without_writing_or_using_a_version() -> None:
    target = MemoryTarget()
    preview = target.apply(res(configmap()), dry_run=True)
    assert preview.key == CM and preview.manifest["metadata"]["generation"] == 1
    assert "resourceVersion" not in preview.manifest["metadata"]
    assert target.objects() == {}
    target.apply(res(configmap()))
    update = target.apply(res(configmap(data={"k": "2"})), dry_run=True)
    assert update.manifest["metadata"]["generation"] == 2
    assert update.manifest["metadata"]["resourceVersion"] == "1"
    assert meta(target)["generation"] == 1
    assert target.apply(res(configmap("b"))).manifest["metadata"]["resourceVersion"] == "2"


def test_dry_run_delete_reports_without_deleting() -> None:
    target = MemoryTarget()
    target.apply(res(configmap()))
    assert target.delete(CM, dry_run=True) is True
    assert CM in target.objects()
    assert target.delete(DEPLOY, dry_run=True) is False


# -- copies ------------------------------------------------------------------------------


def test_callers_cannot_mutate_server_state() -> None:
    target = MemoryTarget()
    manifest = configmap()
    returned = target.apply(res(manifest))
    manifest["data"]["k"] = "caller"
    returned.manifest["data"]["k"] = "returned"
    target.live([CM])[CM].manifest["data"]["k"] = "live"
    target.objects()[CM]["data"]["k"] = "snapshot"
    assert target.live([CM])[CM].manifest["data"] == {"k": "v"}


def test_inventories_are_stored_as_copies() -> None:
    target = MemoryTarget()
    entries = {CM: "v1"}
    target.write_inventory("app", Inventory(entries, "r1"))
    entries[DEPLOY] = "apps/v1"
    read = target.read_inventory("app")
    assert read is not None and dict(read.entries) == {CM: "v1"}
    assert target.read_inventory("other") is None


# -- call records and helpers ------------------------------------------------------------


def test_every_call_is_recorded_in_order_with_counts() -> None:
    target = MemoryTarget()
    target.live([CM, DEPLOY])
    target.apply(res(configmap()), dry_run=True)
    target.apply(res(configmap()))
    target.delete(CM)
    target.write_inventory("app", Inventory({}, ""))
    target.read_inventory("app")
    assert target.calls == [
        Call("live", None, False),
        Call("apply", CM, True),
        Call("apply", CM, False),
        Call("delete", CM, False),
        Call("write_inventory", None, False),
        Call("read_inventory", None, False),
    ]
    counts = target.counts()
    assert (counts["apply"], counts["live"], counts["health"]) == (2, 1, 0)
    target.reset_calls()
    assert target.calls == [] and target.objects() == {}


def test_put_and_mutate_simulate_other_writers_without_recording_calls() -> None:
    target = MemoryTarget()
    foreign = target.put(configmap("foreign"))
    assert foreign.manifest["metadata"]["generation"] == 1
    target.apply(res(configmap()))
    drifted = target.mutate(CM, lambda obj: obj["data"].update(k="drift"))
    assert drifted.manifest["data"] == {"k": "drift"}
    assert drifted.manifest["metadata"]["generation"] == 2
    assert drifted.manifest["metadata"]["resourceVersion"] == "3"
    relabelled = target.mutate(
        CM, lambda obj: {**obj, "metadata": {**obj["metadata"], "labels": {"x": "y"}}}
    )
    assert relabelled.manifest["metadata"]["generation"] == 2
    assert relabelled.manifest["metadata"]["labels"] == {"x": "y"}
    assert [c.method for c in target.calls] == ["apply"]
    with pytest.raises(KeyError):
        target.mutate(DEPLOY, lambda obj: None)
    with pytest.raises(ApplyError, match="not the key"):
        target.mutate(CM, lambda obj: obj["metadata"].update(name="renamed"))


def test_apply_rejects_a_manifest_that_does_not_match_its_key() -> None:
    target = MemoryTarget()
    wrong = Resource(DEPLOY, "v1", configmap())
    with pytest.raises(ApplyError, match="not the key"):
        target.apply(wrong)
    assert target.objects() == {}


def test_scopes_answer_is_namespaced_and_are_enforced() -> None:
    target = MemoryTarget(scopes=KUBERNETES_SCOPES)
    assert target.is_namespaced("", "ConfigMap") is True
    assert target.is_namespaced("", "Namespace") is False
    assert target.is_namespaced("example.com", "Widget") is None
    assert MemoryTarget().is_namespaced("", "ConfigMap") is None
    unscoped = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    with pytest.raises(ApplyError, match="namespaced"):
        target.apply(res(unscoped))
    scoped_ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x", "namespace": "y"},
    }
    with pytest.raises(ApplyError, match="cluster-scoped"):
        target.apply(res(scoped_ns))


def test_concurrent_writers_get_unique_resource_versions() -> None:
    target = MemoryTarget()

    def writer(n: int) -> None:
        for i in range(50):
            target.apply(res(configmap(f"w{n}-{i}")))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = [int(obj["metadata"]["resourceVersion"]) for obj in target.objects().values()]
    assert sorted(versions) == list(range(1, 401))
    assert target.counts()["apply"] == 400


# -- faults ------------------------------------------------------------------------------


def test_injected_error_classes() -> None:
    assert issubclass(InjectedTransientError, ApplyError)
    assert issubclass(InjectedTransientError, TransientError)
    assert issubclass(InjectedError, ApplyError)
    assert not issubclass(InjectedError, TransientError)


def test_fail_the_third_apply_twice_then_succeed() -> None:
    target = MemoryTarget(faults=[FailNth(3, method="apply", times=2)])
    target.apply(res(configmap("a")))
    target.apply(res(configmap("b")))
    before = target.objects()
    for _ in range(2):
        with pytest.raises(InjectedTransientError) as info:
            target.apply(res(configmap("c")))
        assert target.objects() == before, "a failed apply changed state"
    assert "ConfigMap/team-a/c" in str(info.value) and info.value.key == res(configmap("c")).key
    stored = target.apply(res(configmap("c")))
    assert stored.manifest["metadata"]["resourceVersion"] == "3", "failures used no version"
    assert target.counts()["apply"] == 5, "failed calls are recorded too"


def test_fail_nth_for_one_key_counts_only_that_key() -> None:
    target = MemoryTarget(faults=[FailNth(2, key=CM)])
    target.apply(res(configmap()))
    target.apply(res(configmap("other")))
    target.apply(res(configmap("other")))
    with pytest.raises(InjectedTransientError):
        target.delete(CM)
    assert CM in target.objects()
    assert target.delete(CM) is True


def test_a_fault_can_select_real_writes_or_dry_runs_only() -> None:
    target = MemoryTarget(faults=[FailNth(1, method="apply", dry_run=False)])
    target.apply(res(configmap()), dry_run=True)  # validation passes through
    with pytest.raises(InjectedTransientError):
        target.apply(res(configmap()))
    target.apply(res(configmap()))
    assert repr(target.faults.faults[0]) == "FailNth(1, method=apply, dry_run=False, times=1)"


def test_fail_when_a_predicate_matches_is_permanent_when_asked() -> None:
    def rejected(call: Call) -> bool:
        return call.key is not None and call.key.name.startswith("bad")

    target = MemoryTarget(faults=[FailWhen(rejected, transient=False)])
    for _ in range(3):
        with pytest.raises(InjectedError) as info:
            target.apply(res(configmap("bad-1")))
        assert not isinstance(info.value, TransientError)
    target.apply(res(configmap("good")))
    assert list(target.objects()) == [res(configmap("good")).key]


def test_a_fault_can_be_limited_to_n_occurrences() -> None:
    fault = FailWhen(lambda call: True, method="delete", times=1)
    target = MemoryTarget(faults=[fault])
    with pytest.raises(InjectedTransientError):
        target.delete(CM)
    assert target.delete(CM) is False
    assert (fault.fired, fault.seen, fault.exhausted) == (1, 2, True)


def test_faults_on_calls_without_a_key_name_the_target() -> None:
    target = MemoryTarget(
        "mock:", faults=[FailNth(1, method=["live", "write_inventory"], times=None)]
    )
    with pytest.raises(InjectedTransientError, match=r"^mock:: injected transient failure of live"):
        target.live([CM])
    with pytest.raises(InjectedTransientError):
        target.write_inventory("app", Inventory({CM: "v1"}, "r"))
    assert target.read_inventory("app") is None


def _failure_pattern(target: MemoryTarget, calls: int) -> list[bool]:
    pattern = []
    for i in range(calls):
        try:
            target.apply(res(configmap(f"cm-{i}")))
        except InjectedTransientError:
            pattern.append(True)
        else:
            pattern.append(False)
    return pattern


def test_a_seeded_failure_rate_is_deterministic() -> None:
    first = _failure_pattern(MemoryTarget(faults=[FailureRate(0.3, seed=7)]), 200)
    again = _failure_pattern(MemoryTarget(faults=[FailureRate(0.3, seed=7)]), 200)
    other = _failure_pattern(MemoryTarget(faults=[FailureRate(0.3, seed=8)]), 200)
    assert first == again
    assert first != other
    assert 30 < sum(first) < 90
    assert not any(_failure_pattern(MemoryTarget(faults=[FailureRate(0.0)]), 20))
    assert all(_failure_pattern(MemoryTarget(faults=[FailureRate(1.0)]), 20))


def test_latency_fixed_and_seeded_random() -> None:
    slept: list[float] = []
    fixed = FaultInjector([Latency(0.25, method="apply")], sleep=slept.append)
    target = MemoryTarget(faults=fixed)
    target.apply(res(configmap()))
    target.live([CM])
    assert slept == [0.25]

    def delays(seed: int) -> list[float]:
        recorded: list[float] = []
        injector = FaultInjector([Latency(0.1, max_seconds=0.2, seed=seed)], sleep=recorded.append)
        random_target = MemoryTarget(faults=injector)
        for _ in range(10):
            random_target.live([CM])
        return recorded

    assert delays(1) == delays(1) != delays(2)
    assert all(0.1 <= d <= 0.2 for d in delays(1))


def test_latency_really_sleeps() -> None:
    target = MemoryTarget(faults=[Latency(0.02)])
    start = time.monotonic()
    target.live([CM])
    assert time.monotonic() - start >= 0.02


def test_faults_can_be_added_while_running_and_cleared() -> None:
    target = MemoryTarget()
    target.faults.add(FailNth(1, method="apply"))
    with pytest.raises(InjectedTransientError):
        target.apply(res(configmap()))
    target.faults.add(FailWhen(lambda call: True))
    target.faults.clear()
    target.apply(res(configmap()))


@pytest.mark.parametrize(
    "make",
    [
        lambda: FailNth(0),
        lambda: FailNth(1, method="patch"),
        lambda: FailNth(1, method=[]),
        lambda: FailureRate(1.5),
        lambda: Latency(-1),
        lambda: Latency(0.2, max_seconds=0.1),
        lambda: FailWhen(lambda call: True, times=-1),
    ],
)
def test_invalid_fault_rules_are_refused(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


# -- URLs and shared instances -----------------------------------------------------------


def test_mock_url_gives_a_new_empty_target() -> None:
    first, second = open_target("mock:"), open_target("mock:")
    assert isinstance(first, MemoryTarget) and first is not second
    first.apply(res(configmap()))
    assert isinstance(second, MemoryTarget) and second.objects() == {}


def test_named_mock_urls_share_one_instance() -> None:
    first = open_target("mock:cluster-1")
    assert first is open_target("mock:cluster-1") is MemoryTarget.shared("cluster-1")
    assert first is open_target("mock://cluster-1")
    assert first is not open_target("mock:cluster-2")
    first.apply(res(configmap()))
    MemoryTarget.clear_shared()
    assert MemoryTarget.shared("cluster-1").objects() == {}


def test_shared_options_apply_only_on_creation() -> None:
    target = MemoryTarget.shared("scoped", scopes=KUBERNETES_SCOPES)
    assert target.is_namespaced("", "Namespace") is False
    assert MemoryTarget.shared("scoped") is target
    with pytest.raises(ValueError, match="exists"):
        MemoryTarget.shared("scoped", scopes={})
    with pytest.raises(ValueError, match="invalid"):
        MemoryTarget.shared("a/b")


def test_url_options_map_to_faults() -> None:
    target = MemoryTarget.from_url(
        "mock:?failure_rate=0.1&seed=7&latency=0.01&latency_max=0.02&methods=apply,delete"
    )
    rate, latency = target.faults.faults
    assert isinstance(rate, FailureRate)
    assert (rate.rate, rate.seed, rate.transient) == (0.1, 7, True)
    assert rate.methods == frozenset({"apply", "delete"})
    assert isinstance(latency, Latency)
    assert (latency.seconds, latency.max_seconds) == (0.01, 0.02)
    permanent = MemoryTarget.from_url("mock:?failure_rate=1&transient=false")
    with pytest.raises(InjectedError) as info:
        permanent.live([])
    assert not isinstance(info.value, TransientError)


def test_a_named_url_with_faults_is_a_faulty_handle_on_the_shared_state() -> None:
    shared = MemoryTarget.shared("flaky")
    flaky = open_target("mock:flaky?failure_rate=1&methods=apply")
    assert isinstance(flaky, MemoryTarget) and flaky is not shared
    assert flaky.url == "mock:flaky?failure_rate=1&methods=apply"
    with pytest.raises(InjectedTransientError):
        flaky.apply(res(configmap()))
    shared.apply(res(configmap()))
    assert CM in flaky.live([CM])
    assert [c.method for c in shared.calls] == ["apply", "apply", "live"]


def test_handles_with_faults_share_state_and_calls() -> None:
    target = MemoryTarget()
    handle = target.with_faults(FailNth(1))
    with pytest.raises(InjectedTransientError):
        handle.apply(res(configmap()))
    handle.apply(res(configmap()))
    assert CM in target.objects()
    assert target.counts()["apply"] == 2


@pytest.mark.parametrize(
    "url",
    [
        "mock:?unknown=1",
        "mock:?failure_rate=lots",
        "mock:?failure_rate=2",
        "mock:?seed=1.5",
        "mock:?latency=-1",
        "mock:?latency=0.2&latency_max=0.1",
        "mock:?methods=patch&failure_rate=0.5",
        "mock:?transient=maybe",
        "mock:?seed=1&seed=2",
        "mock:?novalue",
        "mock:a/b",
        "mock:näme",
        "mock:x#frag",
        "memory:",
        "mock",
    ],
)
def test_bad_urls_raise_invalid_url_error(url: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        MemoryTarget.from_url(url)
    assert info.value.url == url


def test_python_options_pass_through_from_url() -> None:
    target = MemoryTarget.from_url("mock:", scopes=KUBERNETES_SCOPES, faults=[FailNth(1)])
    assert target.is_namespaced("", "Secret") is True
    with pytest.raises(InjectedTransientError):
        target.live([])
