"""Fixtures the Kubernetes target tests share (a pytest plugin, see conftest.py).

``emulator`` is the session's API emulator; ``open_target(url="k8s:", **options)`` opens
targets on it, all closed after the test; ``suffix()`` gives tests sharing one emulator
names of their own. Needs the ``kubernetes`` extra only when a fixture is used.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gitops.targets.kubernetes import KubernetesTarget

__all__ = ["emulator", "open_target", "suffix"]


def suffix() -> str:
    """A short random suffix: tests sharing one emulator keep to their own names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def emulator(kube_emulator_session: Any) -> Any:
    """The emulator the session shares."""
    return kube_emulator_session


@pytest.fixture
def open_target(emulator: Any) -> Iterator[Callable[..., KubernetesTarget]]:
    """``open_target(url="k8s:", **options)``: a target on ``emulator``, closed afterwards."""
    from gitops.targets.kubernetes import KubernetesTarget

    opened: list[KubernetesTarget] = []

    def make(url: str = "k8s:", **options: Any) -> KubernetesTarget:
        target = KubernetesTarget(url, kubeconfig=str(emulator.kubeconfig_path), **options)
        opened.append(target)
        return target

    yield make
    for target in opened:
        target.close()
