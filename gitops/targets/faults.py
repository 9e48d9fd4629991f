"""Fault injection for targets: fail or slow down chosen calls, deterministically.

A :class:`FaultInjector` holds :class:`Fault` rules; a target asks it about every call
*before* touching any state, so an injected failure never leaves a half-done change
behind. Rules select calls by method and key, can fire a limited number of times, and
raise either a transient error (which the engine retries) or a permanent one. Random
rules draw from their own seeded ``random.Random``: the same seed and the same call
sequence give the same failures.

This is product code (the ``mock:`` target injects faults from its URL query);
:mod:`gitops.testing.faults` re-exports it for tests. It must never touch a target's
state or import a backend or a test kit: it only decides.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from gitops.errors import ApplyError, TransientError
from gitops.model import ResourceKey

__all__ = [
    "METHODS",
    "Call",
    "FailNth",
    "FailWhen",
    "FailureRate",
    "Fault",
    "FaultInjector",
    "InjectedError",
    "InjectedTransientError",
    "Latency",
]

#: The target methods a call record (and a fault) can name.
METHODS: tuple[str, ...] = (
    "live", "apply", "delete", "read_inventory", "write_inventory", "read_status", "write_status",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One call a target received: the method, the key it named (None for ``live`` and
    inventory calls) and whether it was a dry run."""

    method: str
    key: ResourceKey | None
    dry_run: bool = False


class InjectedError(ApplyError):
    """A permanent failure injected by a :class:`Fault`; the engine does not retry it.

    ``key`` is the resource the call named, or the target URL for calls without one;
    ``call`` is the call that failed.
    """

    def __init__(self, call: Call, where: str, reason: str) -> None:
        self.call = call
        super().__init__(call.key if call.key is not None else where, reason)


class InjectedTransientError(InjectedError, TransientError):
    """A transient failure injected by a :class:`Fault`; the engine retries it."""


class Fault:
    """A rule that may delay or fail the calls it selects.

    ``method`` (a name from :data:`METHODS`, or several), ``key`` and ``dry_run`` narrow
    the calls the rule sees; ``times`` caps how often it fires (None: no cap). Subclasses
    override :meth:`_fails` and/or :meth:`_delay`; both see only selected calls, in order.
    """

    def __init__(
        self,
        *,
        method: str | Collection[str] | None = None,
        key: ResourceKey | None = None,
        dry_run: bool | None = None,
        times: int | None = None,
        transient: bool = True,
    ) -> None:
        if times is not None and times < 0:
            raise ValueError(f"times must be >= 0 or None, not {times}")
        self.methods = _methods(method)
        self.key = key
        self.dry_run = dry_run
        self.times = times
        self.transient = transient
        #: How many calls this rule has failed or delayed so far.
        self.fired = 0
        #: How many calls this rule has selected so far.
        self.seen = 0

    @property
    def exhausted(self) -> bool:
        """True once the rule fired ``times`` times."""
        return self.times is not None and self.fired >= self.times

    def selects(self, call: Call) -> bool:
        """Whether ``call`` is one this rule is about (method, dry_run and key filters)."""
        if self.methods is not None and call.method not in self.methods:
            return False
        if self.dry_run is not None and call.dry_run != self.dry_run:
            return False
        return self.key is None or call.key == self.key

    def evaluate(self, call: Call) -> tuple[float, bool]:
        """Decide for one call: ``(seconds to sleep, whether to fail)``; updates counters."""
        if not self.selects(call):
            return 0.0, False
        self.seen += 1
        if self.exhausted:
            return 0.0, False
        delay, fails = self._delay(call), self._fails(call)
        if delay > 0 or fails:
            self.fired += 1
        return delay, fails

    def error(self, call: Call, where: str) -> InjectedError:
        """The exception this rule raises for ``call`` on the target at ``where``."""
        cls = InjectedTransientError if self.transient else InjectedError
        kind = "transient" if self.transient else "permanent"
        return cls(call, where, f"injected {kind} failure of {call.method}() by {self!r}")

    def _fails(self, call: Call) -> bool:
        return False

    def _delay(self, call: Call) -> float:
        return 0.0

    def _filters(self) -> str:
        parts = []
        if self.methods is not None:
            parts.append(f"method={','.join(sorted(self.methods))}")
        if self.key is not None:
            parts.append(f"key={self.key}")
        if self.dry_run is not None:
            parts.append(f"dry_run={self.dry_run}")
        if self.times is not None:
            parts.append(f"times={self.times}")
        if not self.transient:
            parts.append("transient=False")
        return "".join(f", {p}" for p in parts)


class FailNth(Fault):
    """Fail the ``n``-th selected call (1-based) and the ones after it, ``times`` times.

    ``FailNth(3, method="apply", times=2)`` fails the 3rd and 4th apply (e.g. the first
    attempt and its retry), then lets every later apply through.
    """

    def __init__(
        self,
        n: int,
        *,
        method: str | Collection[str] | None = None,
        key: ResourceKey | None = None,
        dry_run: bool | None = None,
        times: int | None = 1,
        transient: bool = True,
    ) -> None:
        if n < 1:
            raise ValueError(f"n is 1-based and must be >= 1, not {n}")
        super().__init__(method=method, key=key, dry_run=dry_run, times=times, transient=transient)
        self.n = n

    def _fails(self, call: Call) -> bool:
        return self.seen >= self.n

    def __repr__(self) -> str:
        return f"FailNth({self.n}{self._filters()})"


class FailWhen(Fault):
    """Fail every selected call for which ``predicate(call)`` is true."""

    def __init__(
        self,
        predicate: Callable[[Call], bool],
        *,
        method: str | Collection[str] | None = None,
        key: ResourceKey | None = None,
        dry_run: bool | None = None,
        times: int | None = None,
        transient: bool = True,
    ) -> None:
        super().__init__(method=method, key=key, dry_run=dry_run, times=times, transient=transient)
        self.predicate = predicate

    def _fails(self, call: Call) -> bool:
        return self.predicate(call)

    def __repr__(self) -> str:
        name = getattr(self.predicate, "__name__", repr(self.predicate))
        return f"FailWhen({name}{self._filters()})"


class FailureRate(Fault):
    """Fail each selected call with probability ``rate``, drawn from ``Random(seed)``."""

    def __init__(
        self,
        rate: float,
        *,
        seed: int = 0,
        method: str | Collection[str] | None = None,
        key: ResourceKey | None = None,
        dry_run: bool | None = None,
        times: int | None = None,
        transient: bool = True,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], not {rate}")
        super().__init__(method=method, key=key, dry_run=dry_run, times=times, transient=transient)
        self.rate = rate
        self.seed = seed
        self._random = random.Random(seed)

    def _fails(self, call: Call) -> bool:
        # Always draw, so the sequence depends only on the seed and the calls seen.
        return self._random.random() < self.rate

    def __repr__(self) -> str:
        return f"FailureRate({self.rate}, seed={self.seed}{self._filters()})"


class Latency(Fault):
    """Delay each selected call by ``seconds``, or by a seeded uniform draw up to ``max_seconds``."""

    def __init__(
        self,
        seconds: float,
        *,
        max_seconds: float | None = None,
        seed: int = 0,
        method: str | Collection[str] | None = None,
        key: ResourceKey | None = None,
        dry_run: bool | None = None,
        times: int | None = None,
    ) -> None:
        if seconds < 0 or (max_seconds is not None and max_seconds < seconds):
            raise ValueError(f"need 0 <= seconds <= max_seconds, got {seconds}, {max_seconds}")
        super().__init__(method=method, key=key, dry_run=dry_run, times=times)
        self.seconds = seconds
        self.max_seconds = max_seconds
        self.seed = seed
        self._random = random.Random(seed)

    def _delay(self, call: Call) -> float:
        if self.max_seconds is None:
            return self.seconds
        return self._random.uniform(self.seconds, self.max_seconds)

    def __repr__(self) -> str:
        upper = "" if self.max_seconds is None else f", max_seconds={self.max_seconds}"
        return f"Latency({self.seconds}{upper}{self._filters()})"


class FaultInjector:
    """The fault rules of one target handle, asked about every call before it runs.

    Every rule sees every call (so counters stay meaningful when several rules apply);
    delays add up, and the first failing rule, in the order added, raises.
    """

    def __init__(
        self, faults: Iterable[Fault] = (), *, sleep: Callable[[float], None] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = list(faults)
        self._sleep = sleep

    @property
    def faults(self) -> tuple[Fault, ...]:
        with self._lock:
            return tuple(self._faults)

    def add(self, *faults: Fault) -> None:
        """Add rules; they apply from the next call on."""
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._faults.clear()

    def check(self, call: Call, where: str) -> None:
        """Sleep for the injected latency, then raise the injected error, if any.

        Raises :class:`InjectedTransientError` or :class:`InjectedError`.
        """
        delay, failing = self._decide(call)
        if delay > 0:
            (self._sleep or time.sleep)(delay)
        if failing is not None:
            raise failing.error(call, where)

    def _decide(self, call: Call) -> tuple[float, Fault | None]:
        total, failing = 0.0, None
        with self._lock:
            for fault in self._faults:
                delay, fails = fault.evaluate(call)
                total += delay
                if fails and failing is None:
                    failing = fault
        return total, failing

    def __repr__(self) -> str:
        return f"FaultInjector({list(self._faults)!r})"


def _methods(method: str | Collection[str] | None) -> frozenset[str] | None:
    if method is None:
        return None
    names = frozenset([method] if isinstance(method, str) else method)
    unknown = sorted(names - set(METHODS))
    if unknown or not names:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
    return names
