"""Leader election and sharding on the emulator's Leases, with short durations."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from operator_support import operator_emulator, wait_for

from gitops.operator.kubeapi import Lease, OperatorAPI
from gitops.operator.leader import LeaderElector, ShardElector, shard_of
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]  # the fixture, imported for pytest

LEASE, RENEW, RETRY = 2.0, 1.2, 0.2  # seconds
SLACK = 0.75  # scheduling on a busy machine


@pytest.fixture
def namespace(operator_emulator: KubeEmulator) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    code, _ = operator_emulator.request("POST", "/api/v1/namespaces",
                                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert code == 201
    return name


@pytest.fixture
def api(operator_emulator: KubeEmulator) -> Iterator[OperatorAPI]:
    with OperatorAPI.from_kubeconfig(str(operator_emulator.kubeconfig_path), lease_timeout=0.5) as opened:
        yield opened


class Recorder:
    """on_started/on_stopped of one elector: how often, and when."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def started(self) -> None:
        self.calls.append(("started", time.monotonic()))

    def stopped(self) -> None:
        self.calls.append(("stopped", time.monotonic()))

    def count(self, what: str) -> int:
        return sum(1 for call, _ in self.calls if call == what)


def elector(api: OperatorAPI, namespace: str, identity: str, recorder: Recorder, *,
            lease_duration: float = LEASE, renew_deadline: float = RENEW) -> LeaderElector:
    return LeaderElector(api, namespace=namespace, name="gitops-controller", identity=identity,
                         on_started=recorder.started, on_stopped=recorder.stopped,
                         lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=RETRY)


# -- shard_of -----------------------------------------------------------------------------------------


def test_shard_of_is_stable_across_processes_and_spreads_keys() -> None:
    # fixed values: sha256 of the key, never the per-process salted hash()
    assert [shard_of("gitops/shop", n) for n in (1, 2, 3, 10)] == [0, 0, 0, 2]
    assert shard_of("default/blog", 4) == 1 and shard_of("default/shop", 4) == 3
    counts = Counter(shard_of(f"ns/app-{i}", 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3} and all(800 < c < 1200 for c in counts.values()), counts
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("a/b", 0)


@pytest.mark.parametrize(("lease", "renew", "retry", "message"), [
    (10.0, 10.0, 2.0, "lease_duration must be longer"),
    (15.0, 2.0, 2.0, "renew_deadline must be longer"),
    (15.0, 10.0, 0.0, "retry_period must be positive"),
])
def test_timing_follows_client_go_rules(api: OperatorAPI, lease: float, renew: float, retry: float,
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaderElector(api, namespace="default", identity="a", lease_duration=lease, renew_deadline=renew,
                      retry_period=retry, on_started=lambda: None, on_stopped=lambda: None)
    with pytest.raises(ValueError, match=message):
        ShardElector(api, namespace="default", shards=2, identity="a", lease_duration=lease,
                     renew_deadline=renew, retry_period=retry)


# -- leader election ------------------------------------------------------------------------------------


def test_one_of_two_leads_and_a_killed_leader_is_replaced_within_the_lease_duration(
        api: OperatorAPI, namespace: str) -> None:
    recorders = {"a": Recorder(), "b": Recorder()}
    electors = {name: elector(api, namespace, name, recorders[name]) for name in recorders}
    for one in electors.values():
        one.start()
    try:
        leader = wait_for(lambda: next((n for n, e in electors.items() if e.is_leader), None), LEASE + SLACK,
                          "a leader")
        other = "b" if leader == "a" else "a"
        deadline = time.monotonic() + 3 * RETRY
        while time.monotonic() < deadline:  # several renewals: still exactly one leader
            assert electors[leader].is_leader and not electors[other].is_leader
            time.sleep(RETRY / 2)
        lease = api.get_lease(namespace, "gitops-controller")
        assert lease is not None and lease.holder == leader and lease.duration_seconds == 2
        assert recorders[leader].count("started") == 1 and recorders[other].calls == []

        electors[leader].stop(release=False)  # killed: the lease is left to expire
        killed = time.monotonic()
        wait_for(lambda: electors[other].is_leader, LEASE + RETRY * 1.2 + SLACK, "the standby to take over")
        took = time.monotonic() - killed
        assert took >= LEASE - RETRY - 0.1, "took a lease that had not expired"
        lease = api.get_lease(namespace, "gitops-controller")
        assert lease is not None and lease.holder == other and lease.transitions == 1
    finally:
        for one in electors.values():
            one.stop()


def test_a_graceful_stop_hands_over_at_once(api: OperatorAPI, namespace: str) -> None:
    first, second = Recorder(), Recorder()
    a = elector(api, namespace, "a", first)
    a.start()
    wait_for(lambda: a.is_leader, 2, "a to lead")
    b = elector(api, namespace, "b", second)
    b.start()
    try:
        time.sleep(RETRY * 2)
        assert not b.is_leader
        a.stop()  # releases
        assert [call for call, _ in first.calls] == ["started", "stopped"]
        released = api.get_lease(namespace, "gitops-controller")
        stopped = time.monotonic()
        wait_for(lambda: b.is_leader, LEASE - 0.5, "b to take the released lease")
        assert time.monotonic() - stopped < LEASE / 2
        assert released is not None and released.holder in ("", "b")
    finally:
        b.stop()


def test_a_leader_that_cannot_renew_steps_down_before_its_lease_expires() -> None:
    recorder = Recorder()
    with KubeEmulator() as emulator:
        api = OperatorAPI.from_kubeconfig(str(emulator.kubeconfig_path), lease_timeout=0.3)
        leader = elector(api, "default", "a", recorder, lease_duration=3.0, renew_deadline=1.5)
        leader.start()
        wait_for(lambda: leader.is_leader, 2, "a to lead")
    # the API server is gone; its keep-alive connections too (the emulator's stop() leaves
    # open connections served, a dead server would not)
    api.lease_client.close()
    lost = time.monotonic()
    try:
        wait_for(lambda: recorder.count("stopped") == 1, 3.0, "a to step down")
        stepped_down = recorder.calls[-1][1] - lost
        assert 1.5 - RETRY <= stepped_down < 3.0  # after the renew deadline, before the lease expires
        assert not leader.is_leader
    finally:
        leader.stop()
        api.close()


class SlowReads(OperatorAPI):
    """The real API, whose Lease reads take ``delay`` seconds once ``slow`` is set."""

    def __init__(self, api: OperatorAPI) -> None:
        super().__init__(api.client, lease_client=api.lease_client)
        self.slow = threading.Event()
        self.delay = 0.0
        self.writes: list[float] = []

    def get_lease(self, namespace: str, name: str) -> Lease | None:
        if self.slow.is_set():
            time.sleep(self.delay)
        return super().get_lease(namespace, name)

    def create_lease(self, lease: Lease) -> Lease:
        self.writes.append(time.monotonic())
        return super().create_lease(lease)

    def update_lease(self, lease: Lease) -> Lease:
        self.writes.append(time.monotonic())
        return super().update_lease(lease)


def test_a_renewal_too_slow_for_the_deadline_is_abandoned(api: OperatorAPI, namespace: str) -> None:
    slow = SlowReads(api)
    recorder = Recorder()
    leader = elector(slow, namespace, "a", recorder)
    leader.start()
    try:
        wait_for(lambda: leader.is_leader, 2, "a to lead")
        slow.delay = RENEW + 0.1  # every read now ends after the renew deadline
        slow.slow.set()
        last_renewal = slow.writes[-1]
        wait_for(lambda: recorder.count("stopped") == 1, LEASE + SLACK, "a to step down")
        assert recorder.calls[-1][1] - last_renewal < LEASE  # before the others may take over
        assert slow.writes[-1] == last_renewal  # no renewal was written after the deadline
    finally:
        slow.slow.clear()
        leader.stop()


def test_a_callback_that_raises_does_not_stop_the_election(api: OperatorAPI, namespace: str) -> None:
    def boom() -> None:
        raise RuntimeError("callback bug")

    a = LeaderElector(api, namespace=namespace, identity="a", on_started=boom, on_stopped=boom,
                      lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY)
    a.start()
    try:
        wait_for(lambda: a.is_leader, 2, "a to lead")
        time.sleep(RETRY * 3)
        assert a.is_leader and api.get_lease(namespace, "gitops-controller").holder == "a"  # type: ignore[union-attr]
    finally:
        a.stop()


# -- sharding -------------------------------------------------------------------------------------------


class Shards:
    """One ShardElector and every set its on_change reported."""

    def __init__(self, api: OperatorAPI, namespace: str, identity: str, shards: int,
                 forget_after: float | None = None) -> None:
        self.reports: list[frozenset[int]] = []
        self.lock = threading.Lock()
        self.elector = ShardElector(api, namespace=namespace, shards=shards, identity=identity,
                                    on_change=self.report, forget_after=forget_after,
                                    lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY)

    def report(self, owned: frozenset[int]) -> None:
        with self.lock:
            self.reports.append(owned)

    @property
    def owned(self) -> frozenset[int]:
        return self.elector.owned_shards()


def test_two_replicas_split_two_shards_and_a_survivor_takes_both(api: OperatorAPI, namespace: str) -> None:
    a, b = Shards(api, namespace, "a", 2), Shards(api, namespace, "b", 2)
    a.elector.start()
    try:
        wait_for(lambda: a.owned == {0, 1}, 2, "a alone to take both shards")
        b.elector.start()
        wait_for(lambda: len(a.owned) == 1 and len(b.owned) == 1, 4 * RETRY + 2, "a 1/1 split")
        assert a.owned | b.owned == {0, 1}
        time.sleep(RETRY * 3)  # and it stays so
        assert len(a.owned) == 1 and len(b.owned) == 1 and not a.owned & b.owned
        assert a.elector.live_replicas == b.elector.live_replicas == 2
        assert all(a.elector.owns(key) == (shard_of(key, 2) in a.owned) for key in ("x/1", "x/2", "x/3"))
        holders = {i: api.get_lease(namespace, f"gitops-controller-shard-{i}").holder  # type: ignore[union-attr]
                   for i in (0, 1)}
        assert holders == {next(iter(a.owned)): "a", next(iter(b.owned)): "b"}

        b.elector.stop(release=False)  # killed
        killed = time.monotonic()
        wait_for(lambda: a.owned == {0, 1}, LEASE + 3 * RETRY + SLACK, "a to take b's shard")
        assert time.monotonic() - killed >= LEASE - RETRY - 0.1
        assert a.reports[-1] == {0, 1} and a.reports[0] == {0, 1} and frozenset() not in a.reports
    finally:
        a.elector.stop()
        b.elector.stop()
    assert a.reports[-1] == frozenset()


def test_three_shards_over_two_replicas_and_a_graceful_stop(api: OperatorAPI, namespace: str) -> None:
    a, b = Shards(api, namespace, "a", 3), Shards(api, namespace, "b", 3)
    a.elector.start()
    b.elector.start()
    try:
        wait_for(lambda: sorted([len(a.owned), len(b.owned)]) == [1, 2] and len(a.owned | b.owned) == 3,
                 LEASE + 2, "a 2/1 split")
        b.elector.stop()  # releases its shards and deletes its heartbeat
        stopped = time.monotonic()
        wait_for(lambda: a.owned == {0, 1, 2}, 1.5, "a to take the released shards")
        assert time.monotonic() - stopped < LEASE / 2
        heartbeats = api.list_leases(namespace, "gitops.dev/election=gitops-controller,gitops.dev/lease-role=heartbeat")
        assert [lease.holder for lease in heartbeats] == ["a"]
    finally:
        a.elector.stop()
        b.elector.stop()


def test_a_silent_replica_counts_until_its_heartbeat_expires_and_is_then_forgotten(
        api: OperatorAPI, namespace: str) -> None:
    now = datetime.now(UTC)
    ghost = api.create_lease(Lease(namespace, "gitops-controller-replica-ghost", holder="ghost",
                                   duration_seconds=1, acquire_time=now, renew_time=now,
                                   labels={"gitops.dev/election": "gitops-controller", "gitops.dev/lease-role": "heartbeat"}))
    a = Shards(api, namespace, "a", 2, forget_after=1.2)
    started = time.monotonic()
    a.elector.start()
    try:
        wait_for(lambda: len(a.owned) == 1, 1, "a to take its half while the ghost seems alive")
        assert a.elector.live_replicas == 2
        wait_for(lambda: a.owned == {0, 1}, 1 + 3 * RETRY + SLACK, "a to take both once the ghost expired")
        assert time.monotonic() - started >= 1 - RETRY
        wait_for(lambda: api.get_lease(namespace, ghost.name) is None, 1.2 + 3 * RETRY + SLACK,
                 "the ghost's heartbeat to be deleted")
    finally:
        a.elector.stop()
