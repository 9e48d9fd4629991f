"""Public test kits: the in-memory target with fault injection, and conformance suites.

``MemoryTarget`` and the fault rules (both product code, in :mod:`gitops.targets`) are
importable from here. The pytest suites for plugin authors live in
:mod:`gitops.testing.conformance` and are not imported here, so that ``gitops.testing``
never requires pytest at run time (``mock:`` is also a CLI target).
"""

from __future__ import annotations

from gitops.targets.faults import (
    METHODS,
    Call,
    FailNth,
    FailureRate,
    FailWhen,
    Fault,
    FaultInjector,
    InjectedError,
    InjectedTransientError,
    Latency,
)
from gitops.targets.memory import KUBERNETES_SCOPES, MemoryTarget

__all__ = [
    "KUBERNETES_SCOPES",
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
    "MemoryTarget",
]
