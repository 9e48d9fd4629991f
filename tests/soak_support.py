"""What the soak tests share: how many cycles to run, and counts of what a process holds.

A soak test runs a churn loop (things added and removed again and again) and asserts
that what the process holds returns to its baseline. CI runs a few cycles (each test well
under 20 s); ``GITOPS_SOAK=1`` (or ``HYPOTHESIS_PROFILE=long``, the local profile of
``tests/conftest.py``) runs many more, for a local run before a release.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry


def cycles(ci: int, local: int) -> int:
    """``local`` cycles under ``GITOPS_SOAK=1`` or the ``long`` profile, else ``ci``."""
    long = os.environ.get("GITOPS_SOAK") or os.environ.get("HYPOTHESIS_PROFILE") == "long"
    return local if long else ci


def live(cls: type, where: Callable[[Any], bool] = lambda _obj: True) -> int:
    """How many instances of ``cls`` (subclasses included) for which ``where`` holds are
    alive, after a collection (``where`` keeps other tests' objects out of the count)."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, cls) and where(obj))


def open_fds() -> int:
    """File descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def series(registry: CollectorRegistry, label: str) -> set[str]:
    """The values of ``label`` in every sample of ``registry`` that carries it."""
    return {sample.labels[label] for metric in registry.collect()
            for sample in metric.samples if label in sample.labels}


@dataclass(frozen=True)
class Held:
    """What the process holds at one moment: threads and open file descriptors."""

    threads: int
    fds: int

    @classmethod
    def now(cls) -> Held:
        return cls(threading.active_count(), open_fds())

    def at_most(self, before: Held) -> bool:
        """No more threads nor descriptors than ``before`` (fewer: an earlier test's
        daemon thread may have ended meanwhile)."""
        return self.threads <= before.threads and self.fds <= before.fds
