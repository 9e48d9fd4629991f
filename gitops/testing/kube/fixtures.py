"""pytest fixtures: ``kube_emulator`` (fresh per test) and ``kube_emulator_session``.

Use them with ``pytest_plugins = ["gitops.testing.kube.fixtures"]`` in a conftest.py.
Both yield a started :class:`~gitops.testing.kube.KubeEmulator`; its kubeconfig lives in a
temporary directory and everything stops when the fixture ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitops.testing.kube.emulator import KubeEmulator

__all__ = ["kube_emulator", "kube_emulator_session"]


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
