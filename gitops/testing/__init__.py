"""Public test kits: the in-memory target with fault injection, and conformance suites.

``MemoryTarget`` and the fault rules (both product code, in :mod:`gitops.targets`) are
importable from here. The pytest suites for plugin authors live in
:mod:`gitops.testing.conformance` and are not imported here, so that ``gitops.testing``
never requires pytest at run time (``mock:`` is also a CLI target).
"""

from __future__ import annotations

from gitops.targets import faults
from gitops.targets.faults import *  # noqa: F403
from gitops.targets.memory import KUBERNETES_SCOPES, MemoryTarget

__all__ = ["KUBERNETES_SCOPES", "MemoryTarget"]
__all__ += faults.__all__
