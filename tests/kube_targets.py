"""Helpers the Kubernetes target tests share: fresh names and targets on the emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gitops.targets.kubernetes import KubernetesTarget

__all__ = ["suffix", "targets_on"]


def suffix() -> str:
    """A short random suffix: tests sharing one emulator keep to their own names."""
    return uuid.uuid4().hex[:8]


@contextmanager
def targets_on(emulator: Any) -> Iterator[Callable[..., KubernetesTarget]]:
    """``make(url="k8s:", **options)`` opens targets on ``emulator``; all closed at the end."""
    opened: list[KubernetesTarget] = []

    def make(url: str = "k8s:", **options: Any) -> KubernetesTarget:
        target = KubernetesTarget(url, kubeconfig=str(emulator.kubeconfig_path), **options)
        opened.append(target)
        return target

    try:
        yield make
    finally:
        for target in opened:
            target.close()
