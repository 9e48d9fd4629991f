"""The Target conformance suite against the Kubernetes target: on the API emulator, and on
a real cluster when ``GITOPS_TEST_KUBECONFIG`` names a kubeconfig (kind, k3d, ...).

    kind create cluster --name gitops-test
    GITOPS_TEST_KUBECONFIG=~/.kube/config pytest tests/test_kubernetes_target_conformance.py

The suite creates ``conformance-<hex>`` namespaces and deletes them afterwards; the
inventories it writes live in ConfigMaps ``gitops-inventory-conformance-*`` in the
``gitops-system`` namespace (the suite has no inventory deletion to clean them up).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from gitops.targets.base import Target
from gitops.testing.conformance import LockBehaviour, TargetConformance

pytest.importorskip("kubernetes")
pytest.importorskip("gitops.testing.kube")

from gitops.targets.kubernetes import KubernetesTarget

REAL_CLUSTER = os.environ.get("GITOPS_TEST_KUBECONFIG")


class KubernetesTargetConformance(TargetConformance):
    """The kit, for the Kubernetes target."""

    @pytest.fixture
    def lock_behaviour(self) -> LockBehaviour:
        """lock() is a documented no-op: the ApplySet parent write is a compare-and-swap."""
        return "none"


class TestKubernetesTargetOnTheEmulator(KubernetesTargetConformance):
    @pytest.fixture
    def target(self, kube_emulator_session: Any) -> Target:
        return KubernetesTarget("k8s:", kubeconfig=str(kube_emulator_session.kubeconfig_path))

    @pytest.fixture
    def reopen(self, kube_emulator_session: Any) -> Callable[[], Target]:
        return lambda: KubernetesTarget(
            "k8s:", kubeconfig=str(kube_emulator_session.kubeconfig_path)
        )


class TestWatchingKubernetesTargetOnTheEmulator(KubernetesTargetConformance):
    """The same contract with the watch cache on (reads of owned objects come from it)."""

    @pytest.fixture
    def target(self, kube_emulator_session: Any) -> Target:
        return KubernetesTarget("k8s:?watch=true",
                                kubeconfig=str(kube_emulator_session.kubeconfig_path))

    @pytest.fixture
    def reopen(self, kube_emulator_session: Any) -> Callable[[], Target]:
        return lambda: KubernetesTarget(
            "k8s:?watch=true", kubeconfig=str(kube_emulator_session.kubeconfig_path)
        )


@pytest.mark.skipif(not REAL_CLUSTER, reason="set GITOPS_TEST_KUBECONFIG to run on a real cluster")
class TestKubernetesTargetOnARealCluster(KubernetesTargetConformance):
    @pytest.fixture
    def target(self) -> Target:
        context = os.environ.get("GITOPS_TEST_CONTEXT")
        url = f"k8s://{context}" if context else "k8s:"
        return KubernetesTarget(url, kubeconfig=os.path.expanduser(REAL_CLUSTER or ""))

    @pytest.fixture
    def reopen(self, target: KubernetesTarget) -> Callable[[], Target]:
        return lambda: KubernetesTarget(
            target.url, kubeconfig=os.path.expanduser(REAL_CLUSTER or "")
        )
