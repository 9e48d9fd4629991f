"""Leader election and sharding on ``coordination.k8s.io/v1`` Leases, as client-go does it.

:class:`LeaderElector` holds one Lease: it acquires it when it is free (no holder, or
released) or when its holder has not renewed it for ``leaseDurationSeconds``, renews it
every ``retry_period``, steps down if it cannot renew for ``renew_deadline``, and
releases it on a graceful stop so a standby takes over at once. Expiry is judged the
way client-go judges it, on this process's monotonic clock from the moment it last saw
the Lease change, never by comparing ``renewTime`` with the local wall clock, so clock
skew between nodes cannot make two leaders.

:class:`ShardElector` splits applications into ``shards`` by :func:`shard_of` (a stable
SHA-256 of ``namespace/name``) and holds one Lease per shard,
``<name>-shard-<i>``. Every replica also renews a heartbeat Lease of its own, so each
knows how many replicas are alive and takes at most ``ceil(shards / live replicas)``
shards; a replica with more gives the extra ones back, and a shard whose holder stopped
renewing is taken over once its lease expired. Both electors run in one thread each and
call their callbacks from it; a callback that raises is logged and never stops the
election.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum

from gitops.errors import TargetError
from gitops.operator.kubeapi import Conflict, Lease, OperatorAPI

__all__ = [
    "DEFAULT_LEASE_NAME",
    "LeaderElector",
    "ShardElector",
    "default_identity",
    "shard_of",
]

log = logging.getLogger("gitops.operator.leader")

DEFAULT_LEASE_NAME = "gitops-controller"
ELECTION_LABEL = "gitops.dev/election"  # every Lease of a ShardElector: <name>
ROLE_LABEL = "gitops.dev/lease-role"  # "heartbeat" or "shard"
JITTER = 0.2  # client-go's JitterFactor 1.2: up to 20% more between attempts to acquire
_GC_AFTER = 10  # a dead replica's heartbeat Lease is deleted after this many lease durations


def shard_of(key: str, shards: int) -> int:
    """The shard (``0 <= shard < shards``) of application ``key`` (``namespace/name``).

    The first 8 bytes of the key's SHA-256, modulo ``shards``: the same in every process
    and Python version (``hash()`` is salted per process). Raises ValueError for
    ``shards < 1``.
    """
    if shards < 1:
        raise ValueError("shards must be at least 1")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


def default_identity() -> str:
    """``<hostname>_<8 hex digits>``: unique per process even when two share a host name."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """client-go's rules: lease_duration > renew_deadline > 1.2 * retry_period > 0."""
    if retry_period <= 0:
        raise ValueError("retry_period must be positive")
    if renew_deadline <= retry_period * (1 + JITTER):
        raise ValueError("renew_deadline must be longer than 1.2 * retry_period")
    if lease_duration <= renew_deadline:
        raise ValueError("lease_duration must be longer than renew_deadline")


def _call(callback: Callable[[], None], what: str) -> None:
    try:
        callback()
    except Exception:  # a callback never stops the election
        log.exception("leader election: the %s callback failed", what)


class _Outcome(Enum):
    HELD = "held"  # acquired or renewed: ours until renew_deadline from now
    BUSY = "busy"  # another holder renewed it less than its lease duration ago
    FAILED = "failed"  # the API failed or another replica won a race: try again


class _LeaseLock:
    """One Lease, acquired and renewed with resourceVersion compare-and-swap."""

    def __init__(self, api: OperatorAPI, namespace: str, name: str, identity: str,
                 duration: float, clock: Callable[[], float],
                 labels: dict[str, str] | None = None) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.duration_seconds = max(1, math.ceil(duration))  # the Lease field is whole seconds
        self.labels = labels or {}
        self._clock = clock
        self._observed_version = ""
        self._observed_at = 0.0
        self.held = False
        self.renewed_at = 0.0  # monotonic time of the last successful acquire or renew

    def observe(self, lease: Lease, now: float) -> None:
        """Note ``lease`` as read at ``now``: its expiry counts from its last change seen."""
        if lease.resource_version != self._observed_version:
            self._observed_version, self._observed_at = lease.resource_version, now

    def try_acquire_or_renew(self, deadline: float | None = None) -> _Outcome:
        """One attempt; with a ``deadline`` (monotonic), no write is started after it."""
        now, wall = self._clock(), datetime.now(UTC)
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            if deadline is not None and self._clock() >= deadline:
                return _Outcome.FAILED  # a slow read: writing now could outlive the lease
            if lease is None:
                stored = self.api.create_lease(Lease(
                    self.namespace, self.name, holder=self.identity,
                    duration_seconds=self.duration_seconds, acquire_time=wall, renew_time=wall,
                    labels=self.labels,
                ))
            else:
                self.observe(lease, now)
                if lease.holder and lease.holder != self.identity:
                    duration = lease.duration_seconds or self.duration_seconds
                    if now < self._observed_at + duration:
                        self.held = False
                        return _Outcome.BUSY
                ours = lease.holder == self.identity
                stored = self.api.update_lease(replace(
                    lease, holder=self.identity, duration_seconds=self.duration_seconds,
                    acquire_time=(lease.acquire_time or wall) if ours else wall, renew_time=wall,
                    transitions=lease.transitions if ours else lease.transitions + 1,
                    labels={**lease.labels, **self.labels},
                ))
        except TargetError as exc:  # Conflict: another replica won the race; else a problem
            level = logging.DEBUG if isinstance(exc, Conflict) else logging.WARNING
            log.log(level, "lease %s/%s: %s", self.namespace, self.name, exc)
            return _Outcome.FAILED
        except Exception:  # a bug must not end the election thread: count it as a failure
            log.exception("lease %s/%s: unexpected failure", self.namespace, self.name)
            return _Outcome.FAILED
        self.observe(stored, now)
        self.held, self.renewed_at = True, now
        return _Outcome.HELD

    def keep(self, renew_deadline: float) -> bool:
        """Renew a held lease; False once it is lost: another replica holds it, or it could
        not be renewed for ``renew_deadline`` seconds (then the holder must stop working
        before the lease expires for the others)."""
        deadline = self.renewed_at + renew_deadline
        outcome = self.try_acquire_or_renew(deadline) if self._clock() < deadline else _Outcome.FAILED
        if outcome is _Outcome.BUSY or (outcome is _Outcome.FAILED and self._clock() >= deadline):
            self.held = False
            return False
        return True

    def release(self) -> None:
        """Clear the holder so another replica acquires the Lease at once (best effort)."""
        if not self.held:
            return
        self.held = False
        wall = datetime.now(UTC)
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            if lease is not None and lease.holder == self.identity:
                self.api.update_lease(replace(lease, holder="", duration_seconds=1,
                                              acquire_time=wall, renew_time=wall))
        except TargetError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)


class _Loop:
    """A stoppable background thread around ``run()``."""

    _thread_name = "gitops-election"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._release = True
        self._thread: threading.Thread | None = None

    def run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> None:
        """Run the election in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name=self._thread_name, daemon=True)
            self._thread.start()

    def stop(self, *, release: bool = True, timeout: float | None = None) -> None:
        """End the election; ``release`` gives the Leases up (else they expire: a kill)."""
        self._release = release
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


class LeaderElector(_Loop):
    """Hold the Lease ``namespace/name`` while this replica leads.

    ``on_started`` is called when this replica becomes the leader, ``on_stopped`` when it
    stops being the leader (it could not renew for ``renew_deadline`` seconds, another
    replica holds the Lease, or :meth:`stop`). Both are called from the election thread
    and must return quickly. After stepping down the elector competes again. Durations
    are seconds; the Lease records ``lease_duration`` rounded up to whole seconds.
    """

    _thread_name = "gitops-leader-election"

    def __init__(self, api: OperatorAPI, *, namespace: str, name: str = DEFAULT_LEASE_NAME,
                 identity: str, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, on_started: Callable[[], None],
                 on_stopped: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        _check_timing(lease_duration, renew_deadline, retry_period)
        if not identity:
            raise ValueError("a leader election identity must not be empty")
        self.identity = identity
        self.renew_deadline, self.retry_period = renew_deadline, retry_period
        self._lock = _LeaseLock(api, namespace, name, identity, lease_duration, clock)
        self._on_started, self._on_stopped = on_started, on_stopped
        self._clock = clock
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    def run(self) -> None:
        """Compete, lead, step down, compete again... until :meth:`stop`. Blocks."""
        try:
            while not self._stopping.is_set():
                if self._lock.try_acquire_or_renew() is _Outcome.HELD:
                    self._lead()
                else:
                    self._stopping.wait(self.retry_period * (1 + random.random() * JITTER))
        finally:
            self._finish()

    def _lead(self) -> None:
        log.info("leader election: %s now leads (lease %s/%s)", self.identity,
                 self._lock.namespace, self._lock.name)
        self._leading = True
        _call(self._on_started, "on_started")
        while not self._stopping.wait(self.retry_period):
            if not self._lock.keep(self.renew_deadline):
                log.warning("leader election: %s lost the lease %s/%s", self.identity,
                            self._lock.namespace, self._lock.name)
                self._step_down()
                return

    def _step_down(self) -> None:
        if self._leading:
            self._leading = False
            _call(self._on_stopped, "on_stopped")

    def _finish(self) -> None:
        if self._leading:
            self._step_down()  # stop working first, then let the next leader in
        if self._release:
            self._lock.release()


class ShardElector(_Loop):
    """Hold some of the Leases ``<name>-shard-0 … <name>-shard-<shards-1>``.

    :meth:`owned_shards` is what this replica reconciles (application ``key`` belongs to
    shard :func:`shard_of` ``(key, shards)``). ``on_change(owned)`` is called from the
    election thread each time the set changes: before a shard's Lease is given up, and
    after one is acquired. Each replica renews a heartbeat Lease ``<name>-replica-<hash>``;
    all these Leases are labelled ``gitops.dev/election=<name>`` and
    ``gitops.dev/lease-role=heartbeat|shard``. A heartbeat unchanged for ``forget_after``
    seconds (default: ten lease durations) is deleted.
    """

    _thread_name = "gitops-shard-election"

    def __init__(self, api: OperatorAPI, *, namespace: str, shards: int, identity: str,
                 name: str = DEFAULT_LEASE_NAME, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 on_change: Callable[[frozenset[int]], None] = lambda owned: None,
                 forget_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        _check_timing(lease_duration, renew_deadline, retry_period)
        if shards < 1:
            raise ValueError("shards must be at least 1")
        if not identity:
            raise ValueError("a shard election identity must not be empty")
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.shards = shards
        self.renew_deadline, self.retry_period = renew_deadline, retry_period
        self._clock = clock
        self._on_change = on_change
        self.forget_after = forget_after if forget_after is not None else _GC_AFTER * lease_duration
        self._owned: frozenset[int] = frozenset()
        self._live = 1
        digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
        self._heartbeat = _LeaseLock(api, namespace, f"{name}-replica-{digest}", identity,
                                     lease_duration, clock, {ELECTION_LABEL: name, ROLE_LABEL: "heartbeat"})
        self._locks = [_LeaseLock(api, namespace, f"{name}-shard-{i}", identity, lease_duration, clock,
                                  {ELECTION_LABEL: name, ROLE_LABEL: "shard"})
                       for i in range(shards)]
        self._lock_by_name = {lock.name: lock for lock in self._locks}
        # each replica prefers its own order of shards, so replicas starting together
        # mostly go for different ones, and keeps the shards it prefers most
        self._preference = sorted(
            range(shards), key=lambda i: hashlib.sha256(f"{identity}/{i}".encode()).digest())
        self._peers: dict[str, tuple[str, float]] = {}  # heartbeat name -> (version, seen at)

    def owned_shards(self) -> frozenset[int]:
        """The shards this replica holds now."""
        return self._owned

    def owns(self, key: str) -> bool:
        """Whether application ``key`` (``namespace/name``) is this replica's to reconcile."""
        return shard_of(key, self.shards) in self._owned

    @property
    def live_replicas(self) -> int:
        """Replicas (this one included) whose heartbeat was alive at the last check."""
        return self._live

    def run(self) -> None:
        """Keep a fair share of the shards until :meth:`stop`. Blocks."""
        try:
            while not self._stopping.is_set():
                self._tick()
                self._stopping.wait(self.retry_period * (1 + random.random() * JITTER))
        finally:
            self._finish()

    def _tick(self) -> None:
        self._heartbeat.try_acquire_or_renew()
        self._observe_all()
        limit = math.ceil(self.shards / self._live)
        owned = set(self._owned)
        for i in sorted(owned):  # renew what is held; drop what is lost
            if not self._locks[i].keep(self.renew_deadline):
                log.warning("sharding: %s lost shard %d", self.identity, i)
                owned.discard(i)
        extra = [i for i in reversed(self._preference) if i in owned][: max(0, len(owned) - limit)]
        owned.difference_update(extra)
        self._publish(frozenset(owned))  # stop working on a shard before letting it go
        for i in extra:
            log.info("sharding: %s gives shard %d back (%d live replicas)", self.identity, i, self._live)
            self._locks[i].release()
        for i in self._preference:
            if len(owned) >= limit:
                break
            if i not in owned and self._locks[i].try_acquire_or_renew() is _Outcome.HELD:
                log.info("sharding: %s took shard %d", self.identity, i)
                owned.add(i)
        self._publish(frozenset(owned))

    def _observe_all(self) -> None:
        """One LIST of this election's Leases: who is alive, and when each shard last changed.

        Shards not tried for a while are observed too, so one whose holder died is taken
        over when its lease expires, not a lease duration after it is first looked at.
        """
        try:
            leases = self.api.list_leases(self.namespace, f"{ELECTION_LABEL}={self.name}")
        except TargetError as exc:
            log.debug("sharding: cannot list the election's leases: %s", exc)
            return  # keep the last count
        now = self._clock()
        live, peers = 1, {}
        for lease in leases:
            lock = self._lock_by_name.get(lease.name)
            if lock is not None:
                lock.observe(lease, now)
                continue
            if lease.labels.get(ROLE_LABEL) != "heartbeat" or lease.name == self._heartbeat.name:
                continue
            version, seen = self._peers.get(lease.name, ("", now))
            if lease.resource_version != version:
                seen = now
            peers[lease.name] = (lease.resource_version, seen)
            duration = lease.duration_seconds or self._heartbeat.duration_seconds
            if lease.holder and now < seen + duration:
                live += 1
            elif now >= seen + max(duration, self.forget_after):
                self._collect(lease)
        self._peers, self._live = peers, live

    def _collect(self, lease: Lease) -> None:
        try:
            self.api.delete_lease(lease)
        except TargetError as exc:
            log.debug("sharding: cannot delete the heartbeat %s: %s", lease.name, exc)

    def _publish(self, owned: frozenset[int]) -> None:
        if owned != self._owned:
            self._owned = owned
            try:
                self._on_change(owned)
            except Exception:  # a callback never stops the election
                log.exception("sharding: the on_change callback failed")

    def _finish(self) -> None:
        self._publish(frozenset())
        if self._release:
            for lock in self._locks:
                lock.release()
            if self._heartbeat.held:
                self._collect(Lease(self.namespace, self._heartbeat.name))
