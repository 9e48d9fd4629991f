"""pytest fixtures: ``kube_emulator`` (fresh per test), ``kube_emulator_session`` and
``kube_kubectl`` (the real kubectl bound to ``kube_emulator``).

Use them with ``pytest_plugins = ["gitops.testing.kube.fixtures"]`` in a conftest.py.
The emulators are started; their kubeconfig lives in a temporary directory and everything
stops when the fixture ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.testing.kube.emulator import KubeEmulator
from gitops.testing.kube.kubectl import Kubectl, find_kubectl

__all__ = ["kube_emulator", "kube_emulator_session", "kube_kubectl"]


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A fresh emulator for one test, stopped afterwards."""
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def kube_emulator_session() -> Iterator[KubeEmulator]:
    """One emulator shared by the session: isolate tests by namespace, reset counts yourself."""
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture
def kube_kubectl(kube_emulator: KubeEmulator, tmp_path: Path) -> Kubectl:
    """The real kubectl against ``kube_emulator`` (private HOME and cache); skips without kubectl."""
    if find_kubectl() is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(kube_emulator, tmp_path)
