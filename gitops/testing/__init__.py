"""Public test kits: the in-memory target with fault injection, and conformance suites.

``MemoryTarget`` and the fault rules are importable from here. The pytest suites for
plugin authors live in :mod:`gitops.testing.conformance` and are not imported here, so
that ``gitops.testing`` never requires pytest at run time (``mock:`` is also a CLI target).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitops.testing.faults import (
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

if TYPE_CHECKING:
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

_LAZY = {"MemoryTarget", "KUBERNETES_SCOPES"}


def __getattr__(name: str) -> Any:
    # gitops.targets.memory imports gitops.testing.faults, which runs this module first:
    # import it lazily to keep that cycle harmless.
    if name in _LAZY:
        from gitops.targets import memory

        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
